package io.moemesh.router.config;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.moemesh.model.config.Architecture;
import io.moemesh.model.config.ModelConfig;
import io.moemesh.router.placement.Placement;
import io.moemesh.router.placement.PlacementBudget;
import io.moemesh.router.placement.PlacementPlanners;
import io.moemesh.router.placement.RouteStats;
import io.moemesh.router.trace.RouteTrace;
import io.moemesh.router.trace.TokenRoute;
import io.moemesh.service.settings.SettingRefusedException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Optional;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

/** The default slot budget (slots-per-instance 0): the even deal's slots and room for the busiest experts on top. */
class BudgetsTest {
    static final int LAYERS = 4;

    /** A Mixtral-shaped config.json at a tiny size; {@code sharedIntermediate} > 0 adds a shared expert. */
    static ModelConfig model(int experts, int sharedIntermediate) {
        return new ModelConfig(Architecture.MIXTRAL, 64, 128, sharedIntermediate, LAYERS, 4, 4, 16, 100, 128, 1e-5,
                10000, experts, 2, true, false, false, false, Optional.empty(), List.of(2), "bfloat16");
    }

    @ParameterizedTest(name = "{0} experts, shared {1}, {2} instances, replicas {3}")
    @CsvSource({"8, 0, 4, 2", "8, 0, 4, 1", "8, 0, 4, 3", "8, 96, 4, 2", "64, 0, 8, 2", "60, 0, 8, 3", "128, 0, 16, 2"})
    void defaultSlots_leaveAQuarterOfTheRoutedExperts_beyondTheReplicas(int experts, int shared, int instances,
                                                                         int replicas) {
        ModelConfig c = model(experts, shared);
        PlacementBudget b = Budgets.of(0, 0, c, instances, replicas);
        long required = (long) experts * replicas + b.sharedCopies();
        long spare = (long) b.slotsPerLayer(LAYERS, experts) * instances - required;
        assertThat(spare).as("slots a layer left for the busiest experts' copies")
                .isGreaterThanOrEqualTo((experts + 3) / 4);
    }

    @ParameterizedTest(name = "slots {0}, memory {1}, replicas {2}: {3}")
    @CsvSource({"0, 0, 5, moemesh.router.replicas", "3, 0, 2, moemesh.router.slots-per-instance",
            "0, 1000, 2, moemesh.router.memory-budget-bytes", "0, 600000, 2, moemesh.router.memory-budget-bytes"})
    void aBudgetThatCannotHoldTheEvenDeal_isARefusedSetting_namingTheOneToChange(int slots, long memoryBudgetBytes,
                                                                                int replicas, String setting) {
        // 8 experts on 4 instances: the even deal of 2 replicas needs 4 slots per instance per layer; an expert has
        // 49,152 bytes (64 × 128 × 3 in bf16), so 600,000 bytes hold 3 per layer over the 4 layers, 1,000 none.
        assertThatThrownBy(() -> Budgets.of(slots, memoryBudgetBytes, model(8, 0), 4, replicas))
                .isInstanceOfSatisfying(SettingRefusedException.class, e -> assertThat(e.setting()).isEqualTo(setting))
                .hasMessageContaining(setting.substring("moemesh.router.".length()));
    }

    @ParameterizedTest
    @ValueSource(strings = {"affinity", "affinity-stats"})
    void aPlannedPlacement_underTheDefaultBudget_givesAHotExpertAThirdCopy(String planner) {
        // The chart's defaults: Mixtral's 8 experts on 4 expert pods, router.expertReplicas 2.
        PlacementBudget budget = Budgets.of(0, 0, model(8, 0), 4, 2);
        Placement p = PlacementPlanners.named(planner).plan(skewed(8), budget, PlacementPlanners.localIds(4));
        for (int[][] layer : p.holders()) {
            assertThat(Arrays.stream(layer).mapToInt(h -> h.length).min().orElseThrow()).isGreaterThanOrEqualTo(2);
            assertThat(layer[0].length).as("copies of expert 0, chosen by 9 tokens in 10").isGreaterThanOrEqualTo(3);
        }
    }

    /** Expert 0 chosen by 9 tokens in 10 at every layer, its partner cycling over the rest. */
    static RouteStats skewed(int experts) {
        List<TokenRoute> tokens = new ArrayList<>();
        for (int t = 0; t < 400; t++) {
            int[][] chosen = new int[LAYERS][];
            float[][] weights = new float[LAYERS][];
            for (int l = 0; l < LAYERS; l++) {
                int first = t % 10 == 9 ? 1 + t % (experts - 1) : 0;
                int second = 1 + (t + l) % (experts - 1);
                chosen[l] = second == first ? new int[] {first, first % (experts - 1) + 1} : new int[] {first, second};
                weights[l] = new float[] {0.7f, 0.3f};
            }
            tokens.add(new TokenRoute(Integer.toString(t), -1, chosen, weights));
        }
        return RouteStats.of(new RouteTrace("skewed", 0, LAYERS, experts, 2, tokens));
    }
}
