package io.moemesh.router.coordination;

import static org.assertj.core.api.Assertions.assertThat;

import io.moemesh.proto.router.v1.Instance;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.junit.jupiter.api.Test;

class ParallelLoadsTest {
    static Instance instance(String id) {
        return Instance.newBuilder().setId(id).setEndpoint("127.0.0.1:1").build();
    }

    @Test
    void aCallQueuedBehindTheLoadThreads_getsItsWholeTimeoutFromWhenItIsSent() throws Exception {
        // One load thread, two instances: expert-0's call hangs until its timeout (200 ms + 1 s of slack) cancels it,
        // and only then is expert-1's call sent. It takes 100 ms: within its own timeout, though past a deadline
        // counted from submission.
        ParallelLoads loads = new ParallelLoads(Executors.newFixedThreadPool(1), Duration.ofMillis(200));
        CountDownLatch never = new CountDownLatch(1);
        Set<String> sent = ConcurrentHashMap.newKeySet();
        try {
            Map<Instance, Throwable> failed = loads.onEvery(List.of(instance("expert-0"), instance("expert-1")), in -> {
                sent.add(in.getId());
                try {
                    // a slow load: the hung one never answers, the other answers after 100 ms
                    never.await(in.getId().equals("expert-0") ? 60_000 : 100, TimeUnit.MILLISECONDS);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            });
            assertThat(failed).containsOnlyKeys(instance("expert-0"));
            assertThat(failed.get(instance("expert-0"))).isInstanceOf(TimeoutException.class);
            assertThat(sent).containsExactlyInAnyOrder("expert-0", "expert-1");
        } finally {
            loads.close();
        }
    }
}
