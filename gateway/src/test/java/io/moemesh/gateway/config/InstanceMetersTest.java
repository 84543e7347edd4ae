package io.moemesh.gateway.config;

import static org.assertj.core.api.Assertions.assertThat;

import io.micrometer.core.instrument.Meter;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.moemesh.gateway.dispatch.DispatchTraces;
import io.moemesh.gateway.dispatch.MeshExpertDispatch;
import io.moemesh.gateway.dispatch.ReplicaPicker;
import io.moemesh.gateway.dispatch.ResilientInstance;
import io.moemesh.proto.router.v1.Instance;
import io.moemesh.service.expert.ExpertCall;
import io.moemesh.service.expert.InstanceClient;
import io.moemesh.service.expert.InstanceHealth;
import io.moemesh.service.grpc.InstanceEndpoint;
import io.moemesh.service.placement.EvenPlacement;
import io.moemesh.service.placement.PlacementTable;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.api.Test;
import org.springframework.boot.context.properties.bind.Binder;
import org.springframework.boot.context.properties.source.MapConfigurationPropertySource;

/**
 * The moemesh_gateway_instance_* and dispatch latency / errors series follow the placement's instance ids, as the
 * gateway wires them: through an endpoint change under the same id (the new client's values), a refused placement
 * (the old client's, untouched), and an id leaving (nothing left under its tag).
 */
class InstanceMetersTest {
    private static final int LAYERS = 1;
    private static final int EXPERTS = 2;

    private final MeterRegistry registry = new SimpleMeterRegistry();
    private final InstanceMeters meters = new InstanceMeters(registry);
    private final DispatchProperties dispatch = new Binder(new MapConfigurationPropertySource(Map.of()))
            .bindOrCreate("moemesh.gateway.dispatch", DispatchProperties.class);
    /** Every client opened, by endpoint (each endpoint is connected once in these tests). */
    private final Map<String, Client> clients = new HashMap<>();
    private final List<ResilientInstance> opened = new ArrayList<>();
    private final MeshExpertDispatch mesh = new MeshExpertDispatch(8, in -> {
        if (in.getEndpoint().startsWith("refused")) {
            throw new IllegalStateException(in.getEndpoint() + " cannot be connected");
        }
        Client c = new Client(in.getId(), clients.size() + 1);
        clients.put(in.getEndpoint(), c);
        ResilientInstance r = meters.open(c, in.getEndpoint().startsWith("unix:") ? InstanceEndpoint.UNIX
                : InstanceEndpoint.TCP, dispatch);
        opened.add(r);
        return r;
    }, Duration.ofSeconds(10), ReplicaPicker.PREFER_VISITED, new DispatchTraces(LAYERS, 8));

    /** A client whose health and arena slots in use the test sets; every call answers at once. */
    private static final class Client implements InstanceClient {
        private final String id;
        volatile InstanceHealth health = InstanceHealth.SERVING;
        volatile int slots;
        volatile boolean failing;

        Client(String id, int slots) {
            this.id = id;
            this.slots = slots;
        }

        @Override
        public String id() {
            return id;
        }

        @Override
        public CompletableFuture<float[]> call(ExpertCall call) {
            return failing ? CompletableFuture.failedFuture(new IllegalStateException("down"))
                    : CompletableFuture.completedFuture(new float[0]);
        }

        @Override
        public int inFlight() {
            return 0;
        }

        @Override
        public int arenaSlotsInUse() {
            return slots;
        }

        @Override
        public InstanceHealth health() {
            return health;
        }

        @Override
        public void close() {
        }
    }

    private static PlacementTable placement(long epoch, String... idEndpoint) {
        List<Instance> ins = new ArrayList<>();
        for (int i = 0; i < idEndpoint.length; i += 2) {
            ins.add(Instance.newBuilder().setId(idEndpoint[i]).setEndpoint(idEndpoint[i + 1]).build());
        }
        return PlacementTable.of(EvenPlacement.build(epoch, ins, LAYERS, EXPERTS, false, 1), LAYERS, EXPERTS);
    }

    private double gauge(String name, String instance, String... tags) {
        var search = registry.find(name).tag("instance", instance);
        if (tags.length > 0) {
            search = search.tags(tags);
        }
        return search.gauge().value();
    }

    private List<Meter> taggedWith(String instance) {
        return registry.getMeters().stream().filter(m -> instance.equals(m.getId().getTag("instance"))).toList();
    }

    private void callEvery(String instance) {
        for (ResilientInstance r : mesh.instances()) {
            if (r.id().equals(instance)) {
                // Answered or failed: either way observed.
                r.call(new ExpertCall(1, 0, new float[0], 0, 8, new int[0], new int[0], new float[0]))
                        .exceptionally(e -> null).join();
            }
        }
    }

    @Test
    void endpointChangedUnderTheSameId_gaugesStay_andReadTheNewClient() {
        mesh.usePlacement(placement(1, "expert-0", "10.0.0.1:9100", "expert-1", "10.0.0.2:9100"));
        assertThat(gauge("moemesh.gateway.instance.arena.slots.in.use", "expert-0")).isEqualTo(1);

        mesh.usePlacement(placement(2, "expert-0", "unix:///run/expert-0.sock", "expert-1", "10.0.0.2:9100"));
        Client replacement = clients.get("unix:///run/expert-0.sock");
        assertThat(gauge("moemesh.gateway.instance.arena.slots.in.use", "expert-0")).isEqualTo(replacement.slots);
        replacement.health = InstanceHealth.NOT_SERVING;
        assertThat(gauge("moemesh.gateway.instance.health", "expert-0", "status", "not_serving")).isEqualTo(1);
        assertThat(gauge("moemesh.gateway.instance.health", "expert-0", "status", "serving")).isZero();
        assertThat(gauge("moemesh.gateway.instance.available", "expert-0")).isZero();
        assertThat(gauge("moemesh.gateway.instance.breaker.state", "expert-0", "state", "closed")).isEqualTo(1);
        assertThat(registry.find("moemesh.gateway.instance.arena.calls").tag("instance", "expert-0").functionCounter())
                .isNotNull();
        // The old endpoint's transport is gone with its client; the new one's is there.
        callEvery("expert-0");
        assertThat(registry.find("moemesh.gateway.dispatch.latency").tag("instance", "expert-0").timers())
                .singleElement().satisfies(t -> {
                    assertThat(t.getId().getTag("transport")).isEqualTo(InstanceEndpoint.UNIX);
                    assertThat(t.count()).isOne();
                });
    }

    @Test
    void refusedPlacement_leavesTheSeriesOnTheClientsInForce() {
        mesh.usePlacement(placement(1, "expert-0", "10.0.0.1:9100", "expert-1", "10.0.0.2:9100"));
        List<Meter> before = taggedWith("expert-0");

        // expert-0's new endpoint connects (then is closed again), expert-1's does not: the placement is refused.
        mesh.usePlacement(placement(2, "expert-0", "10.0.0.9:9100", "expert-1", "refused:1"));
        assertThat(mesh.refusedPlacement()).isPresent();
        assertThat(clients).containsKey("10.0.0.9:9100");
        assertThat(taggedWith("expert-0")).containsExactlyInAnyOrderElementsOf(before);
        assertThat(gauge("moemesh.gateway.instance.arena.slots.in.use", "expert-0"))
                .isEqualTo(clients.get("10.0.0.1:9100").slots);
        assertThat(gauge("moemesh.gateway.instance.available", "expert-0")).isOne();
    }

    @Test
    void idLeavingThePlacement_leavesNoSeries_latencyAndErrorsIncluded() {
        mesh.usePlacement(placement(1, "expert-0", "10.0.0.1:9100", "expert-1", "10.0.0.2:9100"));
        clients.get("10.0.0.2:9100").failing = true;
        callEvery("expert-1");
        assertThat(registry.find("moemesh.gateway.dispatch.errors").tag("instance", "expert-1").counter().count())
                .isOne();
        assertThat(registry.find("moemesh.gateway.dispatch.latency").tag("instance", "expert-1").timer().count())
                .isOne();

        mesh.usePlacement(placement(2, "expert-0", "10.0.0.1:9100"));
        assertThat(taggedWith("expert-1")).isEmpty();
        assertThat(taggedWith("expert-0")).isNotEmpty();
        // A call of the closed client answering late does not bring its series back.
        ResilientInstance gone = opened.stream().filter(r -> r.id().equals("expert-1")).findFirst().orElseThrow();
        gone.call(new ExpertCall(1, 0, new float[0], 0, 8, new int[0], new int[0], new float[0])).exceptionally(e -> null)
                .join();
        assertThat(taggedWith("expert-1")).isEmpty();

        mesh.close();
        assertThat(taggedWith("expert-0")).isEmpty();
    }
}
