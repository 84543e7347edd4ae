package io.moemesh.service.expert;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class PrefetchHintsTest {

    @ParameterizedTest(name = "layer {0} expert {1}: {2}")
    @CsvSource({
        "-1, 0, 'layer must be ≥ 0, got -1'",
        "0, -3, 'expert must be ≥ 0, got -3'",
    })
    void expert_refusesNegativeIndices_namingTheField(int layer, int expert, String message) {
        assertThatThrownBy(() -> new PrefetchHints.Expert(layer, expert))
                .isInstanceOf(IllegalArgumentException.class).hasMessage(message);
    }

    @Test
    void hints_refuseAMissingList_andKeepACopy() {
        assertThatThrownBy(() -> new PrefetchHints(1, null)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageStartingWith("experts must be set");
        List<PrefetchHints.Expert> experts = new ArrayList<>(List.of(new PrefetchHints.Expert(0, 1)));
        PrefetchHints h = new PrefetchHints(1, experts);
        experts.clear();
        assertThat(h.experts()).containsExactly(new PrefetchHints.Expert(0, 1));
    }
}
