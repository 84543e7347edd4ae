package io.moemesh.gateway.health;

import static org.assertj.core.api.Assertions.assertThat;

import io.moemesh.gateway.dispatch.MeshExpertDispatch;
import io.moemesh.gateway.dispatch.ResilientInstance;
import io.moemesh.gateway.placement.PlacementSource;
import io.moemesh.proto.router.v1.Instance;
import io.moemesh.service.expert.ExpertCall;
import io.moemesh.service.expert.InstanceClient;
import io.moemesh.service.expert.InstanceHealth;
import io.moemesh.service.placement.EvenPlacement;
import io.moemesh.service.placement.PlacementTable;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.BiFunction;
import java.util.function.Consumer;
import java.util.stream.IntStream;
import org.assertj.core.api.InstanceOfAssertFactories;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * Expert readiness over a real {@link MeshExpertDispatch} and real breakers, with fake instances whose health
 * the test sets: ready while every expert of the placement has an available replica; otherwise down, naming the
 * first missing expert, how many more there are, and listing at most {@value ExpertReadiness#LISTED}.
 */
class ExpertReadinessTest {
    private static final int LAYERS = 4;
    private static final int EXPERTS = 8;

    /** An instance that is never called here unless the test makes its calls fail. */
    private static final class FakeInstance implements InstanceClient {
        private final String id;
        private volatile InstanceHealth health = InstanceHealth.UNKNOWN;
        private Consumer<InstanceHealth> listener = h -> { };

        FakeInstance(String id) {
            this.id = id;
        }

        @Override
        public String id() {
            return id;
        }

        @Override
        public CompletableFuture<float[]> call(ExpertCall call) {
            return CompletableFuture.failedFuture(new IllegalStateException(id + " fails"));
        }

        @Override
        public int inFlight() {
            return 0;
        }

        @Override
        public InstanceHealth health() {
            return health;
        }

        @Override
        public void onHealthChange(Consumer<InstanceHealth> l) {
            listener = l;
        }

        void health(InstanceHealth h) {
            health = h;
            listener.accept(h);
        }

        @Override
        public void close() {
        }
    }

    private final Map<String, FakeInstance> fakes = new HashMap<>();
    private final Map<String, ResilientInstance> resilient = new HashMap<>();
    private final MeshExpertDispatch dispatch = new MeshExpertDispatch(4, LAYERS, in -> {
        FakeInstance f = new FakeInstance(in.getId());
        fakes.put(in.getId(), f);
        ResilientInstance r = new ResilientInstance(f, 4, 50, Duration.ofMinutes(5));
        resilient.put(in.getId(), r);
        return r;
    }, Duration.ofSeconds(10));

    @AfterEach
    void close() {
        dispatch.close();
    }

    /** {@code n} instances, every expert on {@code replicas} of them, placement epoch 7. */
    private void place(int n, int replicas) {
        List<Instance> ins = IntStream.range(0, n).mapToObj(i -> Instance.newBuilder().setId("expert-" + i)
                .setEndpoint("127.0.0.1:" + (9100 + i)).build()).toList();
        dispatch.usePlacement(PlacementTable.of(EvenPlacement.build(7, ins, LAYERS, EXPERTS, false, replicas), LAYERS,
                EXPERTS));
    }

    private Check check() {
        return new ExpertReadiness(dispatch).check();
    }

    @Test
    void everyExpertWithAnAvailableReplica_up_withEachInstancesState() {
        place(2, 1);
        Check c = check();
        assertThat(c.up()).isTrue();
        assertThat(c.reason()).isEqualTo("every expert of placement epoch 7 has a usable replica");
        assertThat(c.details()).containsEntry("epoch", 7L).doesNotContainKey("missing");
        assertThat(c.details().get("instances")).isEqualTo(Map.of(
                "expert-0", Map.of("breaker", "CLOSED", "health", "UNKNOWN", "available", true),
                "expert-1", Map.of("breaker", "CLOSED", "health", "UNKNOWN", "available", true)));
    }

    @ParameterizedTest
    @EnumSource(value = InstanceHealth.class, names = {"NOT_SERVING", "UNREACHABLE"})
    void oneReplicaDown_stillUp_whenEveryExpertHasAnother(InstanceHealth down) {
        place(3, 2);
        fakes.get("expert-1").health(down);
        assertThat(check().up()).isTrue();
    }

    @Test
    void instanceDown_withExpertsOnlyThere_down_namingTheFirst_countingTheRest_listingAtMostEight() {
        place(2, 1);
        fakes.get("expert-1").health(InstanceHealth.NOT_SERVING);
        List<MeshExpertDispatch.MissingExpert> missing = dispatch.missingExperts();
        assertThat(missing).as("half of %d × %d experts", LAYERS, EXPERTS).hasSize(LAYERS * EXPERTS / 2);

        Check c = check();
        assertThat(c.up()).isFalse();
        assertThat(c.reason()).isEqualTo(missing.getFirst() + " has no usable replica (and "
                + (missing.size() - 1) + " more experts)");
        assertThat(c.reason()).startsWith("layer 0 expert ").contains("(placed on expert-1)");
        assertThat(c.details()).containsEntry("missingCount", missing.size());
        assertThat(c.details().get("missing")).asInstanceOf(
                InstanceOfAssertFactories.list(String.class))
                .containsExactlyElementsOf(missing.stream().limit(ExpertReadiness.LISTED).map(Object::toString)
                        .toList());
        assertThat(c.details().get("instances")).asInstanceOf(
                InstanceOfAssertFactories.map(String.class, Object.class))
                .containsEntry("expert-1", Map.of("breaker", "CLOSED", "health", "NOT_SERVING", "available", false));

        fakes.get("expert-1").health(InstanceHealth.SERVING);
        assertThat(check().up()).as("up again once the instance serves").isTrue();
    }

    @Test
    void openBreaker_countsAsUnavailable_evenWithHealthServing() {
        place(2, 1);
        fakes.get("expert-0").health(InstanceHealth.SERVING);
        for (int i = 0; i < 3; i++) {
            resilient.get("expert-0").call(new ExpertCall(1, 0, new float[4], 1, 4, new int[] {1}, new int[] {0},
                    new float[] {1}));
        }
        Check c = check();
        assertThat(c.up()).isFalse();
        assertThat(c.reason()).startsWith("layer 0 expert ").contains("(placed on expert-0) has no usable replica");
    }

    /**
     * An epoch the placement source could not take (the router published it, it does not fit the model) fails
     * readiness naming it, before any placement and while an earlier one serves; ready once it is superseded.
     */
    @Test
    void epochTheSourceCouldNotTake_downNamingIt_withOrWithoutAPlacement_upOnceALaterOneIsTaken() {
        String rejected = "placement epoch 8 from the router at 10.0.0.1:9300 does not fit the model: placement epoch "
                + "8: layer 9 does not exist (model has 4)";
        AtomicReference<String> unapplied = new AtomicReference<>(rejected);
        ExpertReadiness readiness = new ExpertReadiness(dispatch, new PlacementSource() {
            @Override
            public Optional<PlacementTable> current() {
                return Optional.empty();
            }

            @Override
            public String absentReason() {
                return "no expert placement yet: waiting for the router at 10.0.0.1:9300";
            }

            @Override
            public Optional<String> unapplied() {
                return Optional.ofNullable(unapplied.get());
            }
        });
        assertThat(readiness.check()).satisfies(c -> {
            assertThat(c.up()).isFalse();
            assertThat(c.reason()).as("says more than 'none yet'").isEqualTo(rejected);
        });

        place(2, 1);
        assertThat(readiness.check()).satisfies(c -> {
            assertThat(c.up()).isFalse();
            assertThat(c.reason()).isEqualTo(rejected + "; epoch 7 is answered only until the expert-services drain it");
            assertThat(c.details()).containsEntry("epoch", 7L).containsEntry("unappliedPlacement", rejected);
        });

        unapplied.set(null);
        assertThat(readiness.check().up()).isTrue();
    }

    /**
     * A placement the dispatch could not connect fails readiness naming its epoch, also while an earlier epoch
     * serves (the instances answer that one only until their drain grace after the router's switch has passed).
     */
    @Test
    void placementThatCannotBeConnected_downNamingIt_evenWhileAnEarlierServes_untilALaterOneIs() {
        try (MeshExpertDispatch d = new MeshExpertDispatch(4, LAYERS, in -> {
            if (in.getEndpoint().startsWith("unix:")) {
                throw new IllegalStateException(in.getEndpoint() + " needs epoll, which is not available here");
            }
            return new ResilientInstance(new FakeInstance(in.getId()), 4, 50, Duration.ofMinutes(5));
        }, Duration.ofSeconds(10))) {
            BiFunction<Long, String, PlacementTable> table = (epoch, endpoint) -> PlacementTable.of(
                    EvenPlacement.build(epoch, List.of(Instance.newBuilder().setId("expert-0").setEndpoint(endpoint)
                            .build()), LAYERS, EXPERTS, false, 1), LAYERS, EXPERTS);
            d.usePlacement(table.apply(7L, "unix:///run/moemesh/expert-0.sock"));
            Check c = new ExpertReadiness(d).check();
            assertThat(c.up()).isFalse();
            assertThat(c.reason()).isEqualTo("placement epoch 7 could not be applied: java.lang.IllegalStateException: "
                    + "unix:///run/moemesh/expert-0.sock needs epoll, which is not available here");

            d.usePlacement(table.apply(8L, "127.0.0.1:9100"));
            assertThat(new ExpertReadiness(d).check().up()).isTrue();
            d.usePlacement(table.apply(9L, "unix:///run/moemesh/expert-0.sock"));
            c = new ExpertReadiness(d).check();
            String refused = "placement epoch 9 could not be applied: java.lang.IllegalStateException: "
                    + "unix:///run/moemesh/expert-0.sock needs epoll, which is not available here";
            assertThat(c.up()).as("epoch 8 serves, but only until the instances drain it").isFalse();
            assertThat(c.reason()).isEqualTo(refused + "; epoch 8 is answered only until the expert-services drain it");
            assertThat(c.details()).containsEntry("epoch", 8L).containsEntry("unappliedPlacement", refused);

            d.usePlacement(table.apply(10L, "127.0.0.1:9100"));
            assertThat(new ExpertReadiness(d).check().up()).isTrue();
        }
    }

    @Test
    void singleMissingExpert_reasonNamesIt_withoutACount() {
        // Experts are dealt to instance (layer + expert) mod n: with 11 instances, expert-10 holds only the last
        // layer's last expert.
        place(11, 1);
        fakes.get("expert-10").health(InstanceHealth.UNREACHABLE);
        Check c = check();
        assertThat(c.up()).isFalse();
        assertThat(c.reason()).isEqualTo("layer 3 expert 7 (placed on expert-10) has no usable replica");
        assertThat(c.details()).containsEntry("missingCount", 1)
                .containsEntry("missing", List.of("layer 3 expert 7 (placed on expert-10)"));
    }
}
