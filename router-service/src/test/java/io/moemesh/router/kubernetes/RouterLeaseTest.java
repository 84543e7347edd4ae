package io.moemesh.router.kubernetes;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.fabric8.kubernetes.api.model.coordination.v1.Lease;
import io.fabric8.kubernetes.client.KubernetesClient;
import io.fabric8.kubernetes.client.server.mock.EnableKubernetesMockClient;
import io.fabric8.kubernetes.client.server.mock.KubernetesMockServer;
import io.kubernetes.client.openapi.ApiClient;
import io.kubernetes.client.openapi.apis.CoordinationV1Api;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.LongSupplier;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The placement lease through the official client against fabric8's mock API server in CRUD mode (which checks a
 * replace's resourceVersion like a real API server): one router of two holds it, the other takes it over only once
 * it was released or not renewed for its duration, and a holder that sees another holder, or cannot renew, stops
 * holding it. Most tests run the leases on a clock of the test's ({@link #clock}, frozen unless the test moves it), so
 * a slow machine cannot make a holder miss its deadline; the tries themselves run on real timers.
 */
@EnableKubernetesMockClient(crud = true, https = false)
class RouterLeaseTest {
    static final String NS = "moemesh";
    static final String NAME = "test-moemesh-router";
    static final Duration DURATION = Duration.ofSeconds(3);
    KubernetesMockServer server;
    KubernetesClient k8s;
    ApiClient client;
    final List<RouterLease> leases = new ArrayList<>();
    /** Every lease's timers, to stop one as a crash would (no release). */
    final List<ScheduledExecutorService> timers = new CopyOnWriteArrayList<>();
    final List<String> events = new CopyOnWriteArrayList<>();
    /** The leases' monotonic clock (nanoseconds), moved only by the test. */
    final AtomicLong clock = new AtomicLong();

    @BeforeEach
    void client() {
        client = KubernetesApi.client(server.url("/"), Duration.ofSeconds(1));
    }

    @AfterEach
    void close() {
        leases.forEach(RouterLease::close);
        timers.forEach(ScheduledExecutorService::shutdownNow);
    }

    RouterLease lease(String identity) {
        return lease(identity, client, DURATION, clock::get);
    }

    RouterLease lease(String identity, ApiClient api, Duration duration, LongSupplier nanoClock) {
        RouterLease l = new RouterLease(api, NS, NAME, identity, duration, () -> {
            ScheduledExecutorService t = Executors.newScheduledThreadPool(2);
            timers.add(t);
            return t;
        }, nanoClock);
        l.listen(new RouterLease.Listener() {
            @Override
            public void acquired(boolean resumed) {
                events.add(identity + (resumed ? " resumed" : " acquired"));
            }

            @Override
            public void lost(String why) {
                events.add(identity + " lost: " + why);
            }
        });
        leases.add(l);
        return l;
    }

    /** Moves the leases' clock on by {@code d}. */
    boolean advance(Duration d) {
        clock.addAndGet(d.toNanos());
        return true;
    }

    static final String PATH = "/apis/coordination.k8s.io/v1/namespaces/" + NS + "/leases/" + NAME;

    String holder() {
        Lease l = k8s.leases().inNamespace(NS).withName(NAME).get();
        return l == null ? null : l.getSpec().getHolderIdentity();
    }

    @Test
    void oneRouterHoldsIt_theOtherTakesItOver_onlyOnceTheHolderStoppedRenewingForTheDuration() {
        RouterLease a = lease("router-a");
        a.start();
        await().atMost(Duration.ofSeconds(10)).until(a::held);
        assertThat(holder()).isEqualTo("router-a");
        RouterLease b = lease("router-b");
        b.start();
        // Renewed every second (the clock stands still: no renewal is late): b never takes it meanwhile.
        await().during(Duration.ofSeconds(4)).atMost(Duration.ofSeconds(10)).until(() -> !b.held() && a.held());

        timers.getFirst().shutdownNow(); // router-a's process is gone: no renewal, no release

        // Half a second on the clock per look: b takes it once it saw the same record for the 3 s duration.
        await().atMost(Duration.ofSeconds(15)).until(() -> advance(Duration.ofMillis(500)) && b.held());
        assertThat(holder()).isEqualTo("router-b");
        assertThat(k8s.leases().inNamespace(NS).withName(NAME).get().getSpec().getLeaseTransitions()).isEqualTo(1);
    }

    @Test
    void aReleasedLease_isTakenOverAtOnce_withoutWaitingForTheDuration() {
        RouterLease a = lease("router-a");
        a.start();
        await().atMost(Duration.ofSeconds(10)).until(a::held);
        RouterLease b = lease("router-b");
        b.start();
        await().during(Duration.ofSeconds(2)).atMost(Duration.ofSeconds(5)).until(() -> !b.held());

        a.close();

        // The clock stands still, so no duration runs out: b takes it because it was released.
        await().atMost(Duration.ofSeconds(10)).until(b::held);
        assertThat(events).containsExactly("router-a acquired", "router-b acquired");
    }

    @Test
    void aHolderThatFindsAnotherHolder_losesIt_andSaysWho() {
        RouterLease a = lease("router-a");
        a.start();
        await().atMost(Duration.ofSeconds(10)).until(a::held);
        Lease l = k8s.leases().inNamespace(NS).withName(NAME).get();
        l.getSpec().setHolderIdentity("router-z");
        k8s.leases().inNamespace(NS).resource(l).update();

        await().atMost(Duration.ofSeconds(10)).until(() -> !a.held());
        assertThat(events).last().asString().startsWith("router-a lost: router router-z holds it now");
    }

    @Test
    void aHolderThatCannotRenew_givesItUp_beforeAnotherMayTakeIt() {
        RouterLease a = lease("router-a");
        a.start();
        await().atMost(Duration.ofSeconds(10)).until(a::held);
        server.expect().get().withPath(PATH).andReturn(503, "{\"kind\":\"Status\",\"code\":503}").always();

        await().atMost(Duration.ofSeconds(10)).until(() -> advance(Duration.ofMillis(200)) && !a.held());
        assertThat(events).last().asString().startsWith("router-a lost: not renewed for PT2S");
    }

    /**
     * As in production (15 s, each call bounded to 2.5 s, real time): a renewal whose read gets no answer is tried
     * again a second later, well before the 10 s the holder may go unrenewed, instead of a whole renewal period later.
     */
    @Test
    void aRenewalThatTimesOut_isTriedAgainSoon_soTheHolderKeepsTheLease() throws Exception {
        Duration duration = Duration.ofSeconds(15);
        ApiClient bounded = KubernetesApi.withCallTimeout(client, duration.dividedBy(6));
        // A first call, so the lease's own first one (whose start its 10 s count from) is not slowed by a cold start.
        new CoordinationV1Api(bounded).listNamespacedLease(NS).execute();
        RouterLease a = lease("router-a", bounded, duration, System::nanoTime);
        a.start();
        await().atMost(Duration.ofSeconds(10)).until(a::held);
        // The next renewal's read is answered after 5 s: past the call timeout.
        server.expect().get().delay(5, TimeUnit.SECONDS).withPath(PATH).andReturn(503, "{}").once();

        // Past the renewal that times out and past 10 s after the last good one.
        await().during(Duration.ofSeconds(12)).atMost(Duration.ofSeconds(20)).until(a::held);
        assertThat(events).containsExactly("router-a acquired");
    }

    /** Given up while a renewal hangs, then found still naming this router: it is renewed again, as resumed. */
    @Test
    void aHolderThatGaveItUp_andFindsItStillItsOwn_renewsItAsResumed() {
        RouterLease a = lease("router-a");
        a.start();
        await().atMost(Duration.ofSeconds(10)).until(a::held);
        // The next renewal's read takes the 2 s the holder may go unrenewed (on the leases' clock) and fails.
        server.expect().get().withPath(PATH).andReply(503, request -> advance(Duration.ofSeconds(2)) ? "{}" : "")
                .once();

        await().atMost(Duration.ofSeconds(10)).until(() -> events.size() == 3);
        assertThat(events.get(0)).isEqualTo("router-a acquired");
        assertThat(events.get(1)).startsWith("router-a lost: not renewed for PT2S");
        assertThat(events.get(2)).isEqualTo("router-a resumed");
        assertThat(a.held()).isTrue();
        assertThat(k8s.leases().inNamespace(NS).withName(NAME).get().getSpec().getLeaseTransitions()).isZero();
    }
}
