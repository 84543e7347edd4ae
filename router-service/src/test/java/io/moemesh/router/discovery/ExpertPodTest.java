package io.moemesh.router.discovery;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.moemesh.proto.router.v1.Instance;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** Which pods the router places on (plain objects; the API-server path is KubernetesDiscoveryTest). */
class ExpertPodTest {
    static final LabelSelector SELECTOR = LabelSelector.parse("app=moemesh,component=expert-service");
    static final Map<String, String> LABELS = Map.of("app", "moemesh", "component", "expert-service", "extra", "x");

    static ExpertPod pod(String phase, boolean ready, String ip, Integer port, boolean terminating,
                         Map<String, String> annotations) {
        return new ExpertPod("expert-0", LABELS, annotations, terminating, phase, ready, ip, port, null, false);
    }

    @Test
    void runningReadyPodWithAnIp_isAnInstance_atItsGrpcPort_slot0() {
        ExpertPod.Verdict v = pod("Running", true, "10.1.2.3", 9101, false,
                Map.of(ExpertPod.DEVICE, "gpu", ExpertPod.GPUS, "1", ExpertPod.MEMORY_BUDGET, "4096")).judge(SELECTOR, 9100);
        assertThat(v.instance()).isEqualTo(Instance.newBuilder().setId("expert-0").setEndpoint("10.1.2.3:9101")
                .setDeviceSlot(0).setMemoryBudgetBytes(4096).build());
    }

    @Test
    void podOnANode_isAnInstanceInThatNodesFailureDomain_andOneNotScheduledYet_inNone() {
        ExpertPod onNode = new ExpertPod("expert-0", LABELS, Map.of(), false, "Running", true, "10.1.2.3", 9101,
                "gpu-node-7", false);
        assertThat(onNode.judge(SELECTOR, 9100).instance().getFailureDomain()).isEqualTo("gpu-node-7");
        assertThat(pod("Running", true, "10.1.2.3", 9101, false, Map.of()).judge(SELECTOR, 9100).instance()
                .getFailureDomain()).as("unknown: its own domain").isEmpty();
    }

    @Test
    void podWithoutAGrpcContainerPort_usesTheDefaultPort_andIpv6IsBracketed() {
        assertThat(pod("Running", true, "10.1.2.3", null, false, Map.of()).judge(SELECTOR, 9100).instance()
                .getEndpoint()).isEqualTo("10.1.2.3:9100");
        assertThat(pod("Running", true, "fd00::7", null, false, Map.of()).judge(SELECTOR, 9100).instance()
                .getEndpoint()).isEqualTo("[fd00::7]:9100");
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', textBlock = """
            pending                | Pending | true  | 10.1.2.3 | false
            running, not ready     | Running | false | 10.1.2.3 | false
            terminating            | Running | true  | 10.1.2.3 | true
            no phase               |         | true  | 10.1.2.3 | false
            """)
    void podNotReadyYet_isNoInstance_andNotLoggedAsMalformed(String why, String phase, boolean ready, String ip,
                                                              boolean terminating) {
        ExpertPod.Verdict v = pod(phase, ready, ip, 9101, terminating, Map.of()).judge(SELECTOR, 9100);
        assertThat(v.instance()).isNull();
        assertThat(v.ignored()).isFalse();
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', textBlock = """
            no pod IP                   |                    |       |                       | no pod IP
            device not cpu or gpu       | moemesh.io/device  | tpu   |                       | moemesh.io/device
            gpus not a count            | moemesh.io/gpus    | two   |                       | moemesh.io/gpus
            memory budget negative      | moemesh.io/memory-budget-bytes | -5 |              | moemesh.io/memory-budget-bytes
            memory budget not a number  | moemesh.io/memory-budget-bytes | 1e9 |             | moemesh.io/memory-budget-bytes
            grpc port out of range      |                    |       | 70000                 | not in [1, 65535]
            """)
    void malformedPod_isIgnored_withAReasonNamingWhatIsWrong(String why, String annotation, String value, Integer port,
                                                            String reason) {
        Map<String, String> a = new HashMap<>();
        if (annotation != null) {
            a.put(annotation, value);
        }
        ExpertPod p = new ExpertPod("expert-0", LABELS, a, false, "Running", true,
                why.equals("no pod IP") ? null : "10.1.2.3", port, null, false);
        ExpertPod.Verdict v = p.judge(SELECTOR, 9100);
        assertThat(v.instance()).isNull();
        assertThat(v.ignored()).isTrue();
        assertThat(v.reason()).contains(reason);
    }

    @Test
    void podWhoseLabelsDoNotMatchTheSelector_isIgnored() {
        ExpertPod p = new ExpertPod("gateway-0", Map.of("app", "moemesh", "component", "gateway"), Map.of(), false,
                "Running", true, "10.1.2.3", 9101, null, false);
        assertThat(p.judge(SELECTOR, 9100).ignored()).isTrue();
        assertThat(p.judge(SELECTOR, 9100).reason()).contains("do not match");
    }

    @Test
    void podSet_readySet_isSortedById_andFollowsPutsAndRemoves() {
        PodSet set = new PodSet(SELECTOR, 9100);
        set.put(new ExpertPod("expert-1", LABELS, Map.of(), false, "Running", true, "10.0.0.2", null, null, false));
        set.put(new ExpertPod("expert-0", LABELS, Map.of(), false, "Running", true, "10.0.0.1", null, null, false));
        set.put(new ExpertPod("expert-2", LABELS, Map.of(), false, "Pending", false, null, null, null, false));
        set.put(new ExpertPod("expert-bad", LABELS, Map.of(ExpertPod.DEVICE, "tpu"), false, "Running", true,
                "10.0.0.9", null, null, false));
        assertThat(set.ready()).extracting(Instance::getId).containsExactly("expert-0", "expert-1");
        assertThat(set.seen()).isEqualTo(4);
        set.remove("expert-0");
        assertThat(set.ready()).extracting(Instance::getId).containsExactly("expert-1");
        set.replaceAll(List.of());
        assertThat(set.ready()).isEmpty();
        assertThat(set.seen()).isZero();
    }

    @ParameterizedTest
    @CsvSource(delimiter = '|', textBlock = """
            app in (moemesh)
            !app
            app!=moemesh
            =moemesh
            app=moemesh,app=other
            """)
    void labelSelector_otherThanEqualityTerms_isRefused_namingTheTerm(String selector) {
        assertThatThrownBy(() -> LabelSelector.parse(selector)).isInstanceOf(IllegalArgumentException.class);
    }

    @Test
    void labelSelector_equalityTerms_matchAndPrint() {
        LabelSelector s = LabelSelector.parse(" b==2 , a=1");
        assertThat(s.toString()).isEqualTo("a=1,b=2");
        assertThat(s.matches(Map.of("a", "1", "b", "2", "c", "3"))).isTrue();
        assertThat(s.matches(Map.of("a", "1"))).isFalse();
    }
}
