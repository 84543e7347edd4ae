package io.moemesh.cli.bench;

import static org.assertj.core.api.Assertions.assertThat;

import io.moemesh.cli.CliRun;
import org.junit.jupiter.api.Test;

/** Smoke test of {@code bench kvcache-attend} on a small context (the measurement itself is the lead's). */
class KvcacheAttendBenchCommandTest {

    @Test
    void benchKvcacheAttend_printsTheWireBytesPerDecodeToken_asAFractionOfTheSequencesKv() {
        CliRun r = CliRun.of("bench", "kvcache-attend", "--model", "S", "--context", "256", "--tokens", "2");
        assertThat(r.exitCode()).as(r.err()).isZero();
        assertThat(r.out()).contains("model S (8 layers, 8 heads / 2 KV heads, head dim 64), context 256 (16 blocks of 16)")
                .contains("| the sequence's KV (2 · 8 · 2 · 64 · 4 · 256) | 2,097,152 |");
        assertThat(r.out()).containsPattern("\\| \\*\\*Attend ÷ KV\\*\\* \\| \\*\\*[\\d.]+%\\*\\* \\(goal ≤ 1%\\) \\|");
    }

    @Test
    void aContextThatIsNotWholeBlocks_exitsTwo_namingTheOption() {
        CliRun r = CliRun.of("bench", "kvcache-attend", "--context", "100");
        assertThat(r.exitCode()).isEqualTo(2);
        assertThat(r.err().strip()).isEqualTo("moemesh kvcache-attend: --context must be a multiple of --block-tokens "
                + "(16), got 100");
    }
}
