package io.moemesh.model.kernel;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.util.OptionalInt;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;

class BackgroundPriorityTest {

    @Test
    void lowerCurrentThread_setsNice19_onThatThreadOnly() throws Exception {
        assumeTrue(System.getProperty("os.name", "").startsWith("Linux"), "thread nice values are Linux's");
        OptionalInt before = BackgroundPriority.currentNice();
        assumeTrue(before.isPresent(), "/proc/thread-self/stat readable");
        AtomicReference<Boolean> lowered = new AtomicReference<>();
        AtomicReference<OptionalInt> inside = new AtomicReference<>();
        Thread t = new Thread(() -> {
            lowered.set(BackgroundPriority.lowerCurrentThread());
            inside.set(BackgroundPriority.currentNice());
        });
        t.start();
        t.join();
        assertThat(lowered.get()).isTrue();
        assertThat(inside.get()).hasValue(BackgroundPriority.LOWEST);
        assertThat(BackgroundPriority.currentNice()).as("the test's own thread is untouched").isEqualTo(before);
    }
}
