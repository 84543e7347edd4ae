package io.moemesh.gateway.dispatch;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.Set;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/** The replica pickers as plain objects: which holder each picks for a given view of the instances. */
class ReplicaPickerTest {

    /** A view of up to 8 instances: which are usable, which the token visits, and their loads. */
    private record View(Set<Integer> unusable, Set<Integer> visited, int[] loads) implements ReplicaPicker.Candidates {
        @Override
        public boolean usable(int instance) {
            return !unusable.contains(instance);
        }

        @Override
        public boolean visited(int instance) {
            return visited.contains(instance);
        }

        @Override
        public int load(int instance) {
            return loads[instance];
        }
    }

    private static Arguments row(String picker, int[] holders, Set<Integer> unusable, Set<Integer> visited, int[] loads,
                                 int expected, String rule) {
        return Arguments.of(picker, holders, new View(unusable, visited, loads), expected, rule);
    }

    static Stream<Arguments> table() {
        int[] flat = {0, 0, 0, 0};
        return Stream.of(
                row("prefer-visited", new int[] {2}, Set.of(), Set.of(), flat, 2, "the only holder"),
                row("prefer-visited", new int[] {0, 1, 2}, Set.of(), Set.of(), new int[] {5, 3, 3, 0}, 1,
                        "least loaded, first of a tie"),
                row("prefer-visited", new int[] {0, 1, 2}, Set.of(), Set.of(2), new int[] {0, 0, 9, 0}, 2,
                        "visited wins over less loaded"),
                row("prefer-visited", new int[] {0, 1, 2}, Set.of(), Set.of(1, 2), new int[] {0, 0, 0, 0}, 1,
                        "first visited in placement order"),
                row("prefer-visited", new int[] {0, 1, 2}, Set.of(2), Set.of(2), new int[] {4, 1, 0, 0}, 1,
                        "an unusable visited instance is skipped"),
                row("prefer-visited", new int[] {3, 0}, Set.of(), Set.of(), new int[] {1, 0, 0, 1}, 3,
                        "ties by placement order of the holders, not by index"),
                row("prefer-visited", new int[] {0, 1}, Set.of(0, 1), Set.of(), flat, -1, "no usable holder"),
                row("least-loaded", new int[] {0, 1, 2}, Set.of(), Set.of(2), new int[] {0, 0, 9, 0}, 0,
                        "visited or not, the least loaded"),
                row("least-loaded", new int[] {0, 1, 2}, Set.of(0), Set.of(), new int[] {0, 2, 2, 0}, 1,
                        "unusable skipped, first of a tie"),
                row("least-loaded", new int[] {0, 1}, Set.of(0, 1), Set.of(0), flat, -1, "no usable holder"),
                row("balanced-experts", new int[] {0, 1, 2}, Set.of(), Set.of(2), new int[] {0, 3, 9, 0}, 0,
                        "the least loaded, visited or not"),
                row("balanced-experts", new int[] {2, 1}, Set.of(), Set.of(), new int[] {0, 4, 4, 0}, 2,
                        "ties by placement order of the holders"),
                row("balanced-experts", new int[] {0, 1}, Set.of(0), Set.of(), new int[] {0, 8, 0, 0}, 1,
                        "an unusable holder is skipped, however light"),
                row("balanced-experts", new int[] {0, 1}, Set.of(0, 1), Set.of(), flat, -1, "no usable holder"));
    }

    @ParameterizedTest(name = "{0}: {4}")
    @MethodSource("table")
    void pick_followsThePickersRule(String picker, int[] holders, View view, int expected, String rule) {
        assertThat(ReplicaPicker.named(picker, "p").pick(holders, view)).isEqualTo(expected);
    }

    @Test
    void names_defaultFirst_eachResolvesToItself() {
        assertThat(ReplicaPicker.names()).containsExactly("prefer-visited", "least-loaded", "balanced-experts");
        for (String name : ReplicaPicker.names()) {
            assertThat(ReplicaPicker.named(name, "p").name()).isEqualTo(name);
        }
    }

    @Test
    void unknownName_refused_namingThePropertyAndTheNames() {
        assertThatThrownBy(() -> ReplicaPicker.named("random", "moemesh.gateway.dispatch.replica-picker"))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessage("moemesh.gateway.dispatch.replica-picker must be one of prefer-visited, least-loaded, "
                        + "balanced-experts, got 'random'");
    }

    @Test
    void wholeExperts_onlyForBalancedExperts() {
        assertThat(ReplicaPicker.ALL).filteredOn(ReplicaPicker::wholeExperts)
                .containsExactly(ReplicaPicker.BALANCED_EXPERTS);
    }
}
