package io.moemesh.router.kubernetes;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import ch.qos.logback.classic.Level;
import ch.qos.logback.classic.Logger;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.core.read.ListAppender;
import io.fabric8.mockwebserver.MockWebServer;
import io.fabric8.mockwebserver.http.Dispatcher;
import io.fabric8.mockwebserver.http.MockResponse;
import io.fabric8.mockwebserver.http.RecordedRequest;
import io.moemesh.proto.router.v1.Instance;
import io.moemesh.router.discovery.LabelSelector;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Function;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.slf4j.LoggerFactory;

/**
 * Pods from an API server newer than the client's generated models (client-java 27.0.0): every Kubernetes release
 * adds pod members (status.allocatedResources in 1.35, containerStatuses[].volumeMounts in 1.31,
 * securityContext.appArmorProfile in 1.30, ...), which the generated models refuse (kubernetes-client/java#3428,
 * #3980, #4809). Against a scripted API server (fabric8's MockWebServer), the list and the watch read such pods like
 * any other, and one pod that cannot be read is left out without failing the others.
 */
class KubernetesNewerPodMembersTest {
    static final Duration RESYNC = Duration.ofSeconds(30);
    static final Duration PROMPTLY = Duration.ofSeconds(5);
    /** Members the client's models do not define, at several depths of a pod. */
    static final String UNKNOWN_METADATA = "\"futureMetadataField\":\"x\",";
    static final String UNKNOWN_SPEC = "\"futureSpecField\":{\"a\":[1,2]},";
    static final String UNKNOWN_CONTAINER = "\"securityContext\":{\"futureProfile\":{\"type\":\"RuntimeDefault\"}},";
    static final String UNKNOWN_STATUS = "\"futureStatusField\":{\"x\":1},\"allocatedResources\":{\"cpu\":\"500m\"},"
            + "\"containerStatuses\":[{\"name\":\"expert-service\",\"restartCount\":0,\"futureMounts\":[{}]}],";

    final MockWebServer server = new MockWebServer();
    final List<String> lists = new CopyOnWriteArrayList<>();
    final List<String> watches = new CopyOnWriteArrayList<>();
    final List<List<String>> delivered = new CopyOnWriteArrayList<>();
    final ListAppender<ILoggingEvent> logged = new ListAppender<>();
    final Logger logger = (Logger) LoggerFactory.getLogger(KubernetesPodDiscovery.class);
    KubernetesPodDiscovery discovery;

    /** A ready expert-service pod; each {@code extra} is inserted in its part (ends with a comma, or is empty). */
    static String pod(String name, String resourceVersion, String metadata, String spec, String container,
                      String status) {
        return "{\"metadata\":{" + metadata + "\"name\":\"" + name + "\",\"namespace\":\"moemesh\","
                + "\"resourceVersion\":\"" + resourceVersion + "\",\"labels\":{\"app.kubernetes.io/name\":\"moemesh\","
                + "\"app.kubernetes.io/instance\":\"test\",\"app.kubernetes.io/component\":\"expert-service\"}},"
                + "\"spec\":{" + spec + "\"containers\":[{" + container + "\"name\":\"expert-service\","
                + "\"ports\":[{\"name\":\"grpc\",\"containerPort\":9100}]}]},\"status\":{" + status
                + "\"phase\":\"Running\",\"podIP\":\"10.0.0.5\",\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\"}]}}";
    }

    static String plain(String name, String resourceVersion) {
        return pod(name, resourceVersion, "", "", "", "");
    }

    static String newer(String name, String resourceVersion) {
        return pod(name, resourceVersion, UNKNOWN_METADATA, UNKNOWN_SPEC, UNKNOWN_CONTAINER, UNKNOWN_STATUS);
    }

    /** A pod whose status.conditions (which the router reads) is an object, not the API's array. */
    static String unreadable(String name, String resourceVersion) {
        return plain(name, resourceVersion).replace("\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\"}]",
                "\"conditions\":{\"type\":\"Ready\"}");
    }

    static MockResponse json(String body) {
        return new MockResponse().setResponseCode(200).setHeader("Content-Type", "application/json").setBody(body);
    }

    static String event(String type, String pod) {
        return "{\"type\":\"" + type + "\",\"object\":" + pod + "}\n";
    }

    /** A watch that stays open without an event (until the discovery closes it). */
    static MockResponse silent() {
        return json("").setBodyDelay(Duration.ofMinutes(5));
    }

    /** Lists {@code items} at resourceVersion 10; {@code watch} answers the n-th watch (0-based). */
    void serve(String items, Function<Integer, MockResponse> watch) {
        AtomicInteger n = new AtomicInteger();
        server.setDispatcher(new Dispatcher() {
            @Override
            public MockResponse dispatch(RecordedRequest r) {
                if (r.getPath().contains("watch=true")) {
                    watches.add(r.getPath());
                    return watch.apply(n.getAndIncrement());
                }
                lists.add(r.getPath());
                return json("{\"kind\":\"PodList\",\"apiVersion\":\"v1\","
                        + "\"metadata\":{\"resourceVersion\":\"10\"},\"items\":[" + items + "]}");
            }
        });
        server.start();
        discovery = new KubernetesPodDiscovery(KubernetesApi.client("http://localhost:" + server.getPort(), RESYNC),
                "moemesh", LabelSelector.parse(ExpertPods.SELECTOR), 9100, RESYNC);
        discovery.start(set -> delivered.add(set.stream().map(Instance::getId).toList()));
    }

    @BeforeEach
    void captureLog() {
        logged.start();
        logger.addAppender(logged);
    }

    @AfterEach
    void stop() {
        logger.detachAppender(logged);
        if (discovery != null) {
            discovery.close();
        }
        server.shutdown();
    }

    List<String> warnings() {
        return logged.list.stream().filter(e -> e.getLevel() == Level.WARN).map(ILoggingEvent::getFormattedMessage)
                .toList();
    }

    @Test
    void podsWithMembersANewerKubernetesAdds_areListed_likeAnyOther() {
        serve(plain("expert-0", "10") + "," + newer("expert-1", "10"), n -> silent());
        await().atMost(PROMPTLY).until(() -> !delivered.isEmpty());
        assertThat(delivered.getFirst()).containsExactly("expert-0", "expert-1");
        assertThat(discovery.seen()).isEqualTo(2);
        assertThat(lists).hasSize(1);
        assertThat(warnings()).isEmpty();
    }

    @Test
    void aWatchEventWithMembersANewerKubernetesAdds_isApplied_withoutListingAgain() {
        serve(plain("expert-0", "10"), n -> n == 0 ? json(event("ADDED", newer("expert-1", "11"))) : silent());
        await().atMost(PROMPTLY).until(() -> delivered.contains(List.of("expert-0", "expert-1")));
        // The watch ended cleanly after its event: resumed from that event's resourceVersion, not listed again.
        await().atMost(PROMPTLY).until(() -> watches.size() >= 2);
        assertThat(watches.get(1)).contains("resourceVersion=11");
        assertThat(lists).hasSize(1);
        assertThat(warnings()).isEmpty();
    }

    @Test
    void aPodThatCannotBeRead_isLeftOut_loggedOnce_andTheOthersAreDelivered() {
        // Listed unreadable, then two more unreadable events for it; expert-0 becomes unreadable too, then readable.
        serve(plain("expert-0", "10") + "," + unreadable("expert-1", "10"), n -> n == 0
                ? json(event("MODIFIED", unreadable("expert-1", "11")) + event("MODIFIED", unreadable("expert-1", "12"))
                        + event("MODIFIED", unreadable("expert-0", "13")))
                : n == 1 ? json(event("MODIFIED", plain("expert-0", "14"))) : silent());
        await().atMost(PROMPTLY).until(() -> watches.size() >= 3);
        // Its state unknown, expert-0 left the ready set (as if deleted) and came back once readable again.
        assertThat(delivered).containsExactly(List.of("expert-0"), List.of(), List.of("expert-0"));
        assertThat(watches.get(1)).contains("resourceVersion=13");
        assertThat(lists).hasSize(1);
        assertThat(warnings()).filteredOn(w -> w.contains("expert-1")).singleElement().asString()
                .contains("cannot be read", "status.conditions is not an array");
        assertThat(warnings()).filteredOn(w -> w.contains("expert-0")).hasSize(1);
    }
}
