package io.moemesh.cli.bench;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class StartupQuietTest {

    /** bench startup times a service alone only once the rest of the mesh uses under 5% of one core. */
    @ParameterizedTest(name = "{0} CPU s in {1} ms: quiet {2}")
    @CsvSource({"0, 500, true", "0.02, 500, true", "0.025, 500, false", "0.3, 500, false", "0.09, 2000, true",
            "0.1, 2000, false"})
    void isQuiet_underFivePercentOfOneCore(double cpuSeconds, long windowMs, boolean quiet) {
        assertThat(StartupBenchCommand.isQuiet(cpuSeconds, windowMs)).isEqualTo(quiet);
    }
}
