package io.moemesh.router.kubernetes;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.fabric8.kubernetes.api.model.coordination.v1.Lease;
import io.fabric8.kubernetes.client.KubernetesClient;
import io.fabric8.kubernetes.client.server.mock.EnableKubernetesMockClient;
import io.fabric8.kubernetes.client.server.mock.KubernetesMockServer;
import io.kubernetes.client.openapi.ApiClient;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The placement lease through the official client against fabric8's mock API server in CRUD mode (which checks a
 * replace's resourceVersion like a real API server): one router of two holds it, the other takes it over only once
 * it was released or not renewed for its duration, and a holder that sees another holder, or cannot renew, stops
 * holding it.
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
        RouterLease l = new RouterLease(client, NS, NAME, identity, DURATION, () -> {
            ScheduledExecutorService t = Executors.newScheduledThreadPool(2);
            timers.add(t);
            return t;
        }, System::nanoTime);
        l.listen(new RouterLease.Listener() {
            @Override
            public void acquired() {
                events.add(identity + " acquired");
            }

            @Override
            public void lost(String why) {
                events.add(identity + " lost: " + why);
            }
        });
        leases.add(l);
        return l;
    }

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
        // Renewed every second: b never takes it meanwhile.
        await().during(Duration.ofSeconds(4)).atMost(Duration.ofSeconds(10)).until(() -> !b.held() && a.held());

        timers.getFirst().shutdownNow(); // router-a's process is gone: no renewal, no release

        await().atMost(Duration.ofSeconds(15)).until(b::held);
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

        // Renewed every second: taken at b's next try, not after the 3 s duration.
        await().atMost(Duration.ofSeconds(2)).until(b::held);
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
        server.expect().get().withPath("/apis/coordination.k8s.io/v1/namespaces/" + NS + "/leases/" + NAME)
                .andReturn(503, "{\"kind\":\"Status\",\"code\":503}").always();

        await().atMost(Duration.ofSeconds(10)).until(() -> !a.held());
        assertThat(events).last().asString().startsWith("router-a lost: not renewed for PT2S");
    }
}
