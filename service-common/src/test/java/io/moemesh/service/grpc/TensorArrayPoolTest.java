package io.moemesh.service.grpc;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.Test;

class TensorArrayPoolTest {

    @Test
    void take_givesAnArrayOfExactlyTheLength_andAGivenBackOneIsReusedForThatLengthOnly() {
        TensorArrayPool pool = new TensorArrayPool(1 << 20);
        float[] a = pool.take(100);
        assertThat(a).hasSize(100);
        pool.give(a);
        assertThat(pool.idleBytes()).isEqualTo(400);
        assertThat(pool.take(99)).hasSize(99).isNotSameAs(a);
        assertThat(pool.take(100)).isSameAs(a);
        assertThat(pool.idleBytes()).isZero();
        assertThat(pool.take(100)).isNotSameAs(a);
    }

    @Test
    void givingBackTheSameArrayTwice_failsFast_insteadOfHandingItToTwoOwners() {
        TensorArrayPool pool = new TensorArrayPool(1 << 20);
        float[] a = pool.take(16);
        pool.give(a);
        assertThatThrownBy(() -> pool.give(a)).isInstanceOf(IllegalStateException.class)
                .hasMessageContaining("given back twice");
        assertThat(pool.idleBytes()).isEqualTo(64);
        assertThat(pool.take(16)).isSameAs(a);
        assertThat(pool.take(16)).isNotSameAs(a);
    }

    @Test
    void idleArrays_areBoundedPerLengthAndInBytes() {
        TensorArrayPool pool = new TensorArrayPool(1 << 20);
        for (int i = 0; i < TensorArrayPool.MAX_IDLE_PER_LENGTH + 3; i++) {
            pool.give(new float[10]);
        }
        assertThat(pool.idleBytes()).isEqualTo(40L * TensorArrayPool.MAX_IDLE_PER_LENGTH);

        TensorArrayPool small = new TensorArrayPool(1000);
        small.give(new float[200]); // 800 bytes: kept
        small.give(new float[100]); // 400 more: over the bound, dropped
        assertThat(small.idleBytes()).isEqualTo(800);
        assertThat(small.take(100)).hasSize(100);
        assertThat(small.idleBytes()).isEqualTo(800);
    }

    @Test
    void nullAndEmptyArrays_areIgnored_andANegativeLengthIsRefused() {
        TensorArrayPool pool = new TensorArrayPool(1 << 20);
        pool.give(null);
        pool.give(new float[0]);
        assertThat(pool.idleBytes()).isZero();
        assertThatThrownBy(() -> pool.take(-1)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("-1");
        assertThatThrownBy(() -> new TensorArrayPool(-1)).isInstanceOf(IllegalArgumentException.class);
    }

    /** Threads taking, filling with their own mark, checking and giving back: no array is ever held by two. */
    @Test
    void concurrentTakersAndGivers_neverShareAnArray() throws Exception {
        TensorArrayPool pool = new TensorArrayPool(1 << 20);
        ExecutorService threads = Executors.newFixedThreadPool(4);
        try {
            List<Future<Integer>> results = new ArrayList<>();
            for (int t = 0; t < 4; t++) {
                float mark = t + 1;
                results.add(threads.submit(() -> {
                    int clashes = 0;
                    for (int i = 0; i < 20_000; i++) {
                        float[] a = pool.take(64 + i % 3);
                        java.util.Arrays.fill(a, mark);
                        Thread.onSpinWait();
                        for (float v : a) {
                            if (v != mark) {
                                clashes++;
                                break;
                            }
                        }
                        pool.give(a);
                    }
                    return clashes;
                }));
            }
            for (Future<Integer> f : results) {
                assertThat(f.get()).isZero();
            }
        } finally {
            threads.shutdownNow();
        }
    }
}
