package io.moemesh.service.testing;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.concurrent.atomic.AtomicInteger;
import net.jqwik.api.lifecycle.AfterProperty;
import net.jqwik.api.lifecycle.BeforeProperty;

/**
 * Base of the fuzz tests: every property must run exactly jqwik's default number of tries ({@code -Dfuzz.tries}
 * reaches jqwik as {@code jqwik.tries.default}; 1000 in the build), so a fuzz run that silently did fewer cases —
 * a filter that rejects most of them, a setting that did not arrive — fails instead of passing. Subclasses call
 * {@link #countCase()} once per case they send.
 */
public abstract class CountedProperties {
    private static final AtomicInteger CASES = new AtomicInteger();

    protected static void countCase() {
        CASES.incrementAndGet();
    }

    @BeforeProperty
    void countFromZero() {
        CASES.set(0);
    }

    @AfterProperty
    void ranTheConfiguredNumberOfCases() {
        assertThat(CASES.get()).as("cases of this property").isEqualTo(Integer.getInteger("jqwik.tries.default", 1000));
    }
}
