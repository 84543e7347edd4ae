package io.moemesh.cli.bench;

/** Range checks of the bench commands' numeric options: one message shape for every command. */
public final class BenchOptions {
    private BenchOptions() {
    }

    public static void positive(String option, long value) {
        if (value < 1) {
            throw new IllegalArgumentException(option + " must be at least 1, got " + value);
        }
    }

    public static void notNegative(String option, long value) {
        if (value < 0) {
            throw new IllegalArgumentException(option + " must be 0 or more, got " + value);
        }
    }
}
