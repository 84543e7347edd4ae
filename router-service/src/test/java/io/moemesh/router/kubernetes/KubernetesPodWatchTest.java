package io.moemesh.router.kubernetes;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

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
import org.junit.jupiter.api.Test;

/**
 * How the pod discovery follows a watch that ends early or fails, against a scripted API server (fabric8's
 * MockWebServer with a dispatcher): the resync period is 30 s, and each case must not wait for it.
 */
class KubernetesPodWatchTest {
    static final Duration RESYNC = Duration.ofSeconds(30);
    /** Well below the resync period: what "at once" (or after the first back-off pause) must take at most. */
    static final Duration PROMPTLY = Duration.ofSeconds(5);

    final MockWebServer server = new MockWebServer();
    /** Every list and watch request's path with its query, in order. */
    final List<String> lists = new CopyOnWriteArrayList<>();
    final List<String> watches = new CopyOnWriteArrayList<>();
    final List<List<String>> delivered = new CopyOnWriteArrayList<>();
    KubernetesPodDiscovery discovery;

    static String pod(String name, String resourceVersion) {
        return "{\"metadata\":{\"name\":\"" + name + "\",\"namespace\":\"moemesh\",\"resourceVersion\":\""
                + resourceVersion + "\",\"labels\":{\"app.kubernetes.io/name\":\"moemesh\","
                + "\"app.kubernetes.io/instance\":\"test\",\"app.kubernetes.io/component\":\"expert-service\"}},"
                + "\"spec\":{\"containers\":[{\"name\":\"expert-service\",\"ports\":[{\"name\":\"grpc\","
                + "\"containerPort\":9100}]}]},\"status\":{\"phase\":\"Running\",\"podIP\":\"10.0.0.5\","
                + "\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\"}]}}";
    }

    static MockResponse json(int code, String body) {
        return new MockResponse().setResponseCode(code).setHeader("Content-Type", "application/json").setBody(body);
    }

    /** Lists expert-0 at resourceVersion 10; {@code watch} answers the n-th watch (0-based). */
    void serve(Function<Integer, MockResponse> watch) {
        AtomicInteger n = new AtomicInteger();
        server.setDispatcher(new Dispatcher() {
            @Override
            public MockResponse dispatch(RecordedRequest r) {
                if (r.getPath().contains("watch=true")) {
                    watches.add(r.getPath());
                    return watch.apply(n.getAndIncrement());
                }
                lists.add(r.getPath());
                return json(200, "{\"kind\":\"PodList\",\"apiVersion\":\"v1\",\"metadata\":{\"resourceVersion\":\"10\"},"
                        + "\"items\":[" + pod("expert-0", "10") + "]}");
            }
        });
        server.start();
        discovery = new KubernetesPodDiscovery(KubernetesApi.client("http://localhost:" + server.getPort(), RESYNC),
                "moemesh", LabelSelector.parse(ExpertPods.SELECTOR), 9100, RESYNC);
        discovery.start(set -> delivered.add(set.stream().map(Instance::getId).toList()));
    }

    /** A watch that stays open without an event (until the discovery closes it). */
    static MockResponse silent() {
        return json(200, "").setBodyDelay(Duration.ofMinutes(5));
    }

    @AfterEach
    void stop() {
        if (discovery != null) {
            discovery.close();
        }
        server.shutdown();
    }

    @Test
    void aWatchTheServerEndsEarly_isOpenedAgainAtOnce_fromTheLastResourceVersionItDelivered() {
        serve(n -> n == 0 ? json(200, "{\"type\":\"ADDED\",\"object\":" + pod("expert-1", "11") + "}\n") : silent());
        await().atMost(PROMPTLY).until(() -> watches.size() >= 2);
        assertThat(watches.get(0)).contains("resourceVersion=10");
        assertThat(watches.get(1)).contains("resourceVersion=11");
        assertThat(lists).hasSize(1);
        assertThat(delivered).contains(List.of("expert-0", "expert-1"));
    }

    @Test
    void aWatchThatFailsToOpen_isRetriedAfterAShortPause_withAFreshList() {
        serve(n -> n == 0 ? json(500, "{\"kind\":\"Status\",\"code\":500}") : silent());
        await().atMost(PROMPTLY).until(() -> watches.size() >= 2);
        assertThat(lists).hasSize(2);
    }

    @Test
    void aWatchThatIsGone_isFollowedByAFreshListAtOnce() {
        serve(n -> n == 0 ? json(410, "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":\"Failure\","
                + "\"reason\":\"Expired\",\"code\":410}") : silent());
        await().atMost(PROMPTLY).until(() -> watches.size() >= 2);
        assertThat(lists).hasSize(2);
    }

    /** A Spring context stopped and started again: the closed discovery follows the pods again, from a new list. */
    @Test
    void aStartAfterAClose_listsAgain_andDeliversTheReadySetAgain() {
        serve(n -> silent());
        await().atMost(PROMPTLY).until(() -> delivered.size() == 1 && watches.size() == 1);
        discovery.close();
        discovery.start(set -> delivered.add(set.stream().map(Instance::getId).toList()));
        await().atMost(PROMPTLY).until(() -> delivered.size() == 2);
        assertThat(delivered.get(1)).containsExactly("expert-0");
        assertThat(lists).hasSize(2);
    }
}
