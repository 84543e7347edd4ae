package io.moemesh.model.kernel;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.OptionalInt;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;

class BackgroundPriorityTest {

    @Test
    void lowerCurrentThread_setsNice19_onThatThreadOnly() throws Exception {
        assumeTrue(System.getProperty("os.name", "").startsWith("Linux"), "thread nice values are Linux's");
        OptionalInt before = currentNice();
        assumeTrue(before.isPresent(), "/proc/thread-self/stat readable");
        AtomicReference<Boolean> lowered = new AtomicReference<>();
        AtomicReference<OptionalInt> inside = new AtomicReference<>();
        Thread t = new Thread(() -> {
            lowered.set(BackgroundPriority.lowerCurrentThread());
            inside.set(currentNice());
        });
        t.start();
        t.join();
        assertThat(lowered.get()).isTrue();
        assertThat(inside.get()).hasValue(BackgroundPriority.LOWEST);
        assertThat(currentNice()).as("the test's own thread is untouched").isEqualTo(before);
    }

    /** The calling thread's nice value from {@code /proc/thread-self/stat} (field 19), or empty when unreadable. */
    static OptionalInt currentNice() {
        try {
            String stat = Files.readString(Path.of("/proc/thread-self/stat"));
            // the command name (field 2) may hold spaces and parentheses: count fields after its last ')'
            String[] rest = stat.substring(stat.lastIndexOf(')') + 2).split(" ");
            return OptionalInt.of(Integer.parseInt(rest[16]));
        } catch (IOException | RuntimeException e) {
            return OptionalInt.empty();
        }
    }
}
