package io.moemesh.router.reports;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.moemesh.router.prediction.PathPredictor;
import io.moemesh.router.prediction.PathPredictors;
import io.moemesh.router.prediction.PredictionContext;
import io.moemesh.router.support.TestRoutes;
import io.moemesh.router.trace.TokenRoute;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * What waits while a full report message ({@link RouteBook#MAX_SAMPLES_PER_MESSAGE} samples) is being learned: on an
 * OLMoE-shaped model that is seconds of learning, and the metrics, DescribeRouter, PredictPaths, Replan's planning
 * and the snapshots all read the book. A predictor that stops in the middle of the message (a latch, so no test
 * depends on how fast this machine learns) shows what answers meanwhile: the counters at once, a prediction at the
 * end of the chunk being learned, long before the message's end.
 */
class RouteBookReadsDuringIngestTest {
    /** The token (1-based) at which the predictor stops learning until released: inside the first chunk. */
    static final int HOLD_AT = 5;

    final ExecutorService ingestion = Executors.newSingleThreadExecutor();
    final HeldPredictor predictor = new HeldPredictor(PathPredictors.named(PathPredictors.DEFAULT, TestRoutes.SHAPE));
    final RouteBook book = new RouteBook(TestRoutes.SHAPE, predictor, 16_384);

    /** The real predictor, stopped at the {@link #HOLD_AT}-th token it learns until {@link #release}d. */
    static final class HeldPredictor implements PathPredictor {
        final PathPredictor real;
        final CountDownLatch holding = new CountDownLatch(1);
        final CountDownLatch release = new CountDownLatch(1);
        final AtomicInteger learned = new AtomicInteger();
        /** The thread whose prediction is watched, and how many tokens had been learned when it predicted. */
        volatile Thread reader;
        final AtomicInteger learnedWhenReaderPredicted = new AtomicInteger(-1);

        HeldPredictor(PathPredictor real) {
            this.real = real;
        }

        @Override
        public String name() {
            return real.name();
        }

        @Override
        public void learn(TokenRoute token, List<TokenRoute> recent) {
            if (learned.incrementAndGet() == HOLD_AT) {
                holding.countDown();
                try {
                    // Bounded only so that a broken book cannot hang the build; the tests release it themselves.
                    release.await(2, TimeUnit.MINUTES);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }
            real.learn(token, recent);
        }

        @Override
        public int[] predict(PredictionContext context, int targetLayer, int n) {
            if (Thread.currentThread() == reader) {
                learnedWhenReaderPredicted.compareAndSet(-1, learned.get());
            }
            return real.predict(context, targetLayer, n);
        }
    }

    static List<ReportedToken> fullMessage() {
        List<ReportedToken> out = new ArrayList<>();
        for (int i = 0; i < RouteBook.MAX_SAMPLES_PER_MESSAGE; i++) {
            out.add(TestRoutes.token("gw-1-r" + i / 64, i % 64, i));
        }
        return out;
    }

    @AfterEach
    void stop() throws InterruptedException {
        predictor.release.countDown();
        ingestion.shutdown();
        ingestion.awaitTermination(1, TimeUnit.MINUTES);
    }

    /** Starts ingesting a full message on another thread and waits until the predictor holds it mid-way. */
    CompletableFuture<Integer> ingestHeldMidway() {
        CompletableFuture<Integer> ingested = CompletableFuture.supplyAsync(() -> book.ingest(fullMessage()),
                ingestion);
        await().until(() -> predictor.holding.getCount() == 0);
        return ingested;
    }

    @Test
    void theCountersAndTheWindowSize_answerWhileAFullReportMessageIsBeingLearned() {
        CompletableFuture<Integer> ingested = ingestHeldMidway();

        // What the metrics and DescribeRouter read, asked while the message is held mid-way under the book's lock.
        CompletableFuture<List<Object>> read = CompletableFuture.supplyAsync(() -> List.of(book.ingested(),
                book.windowSize(), book.dropped(), book.recall().truths()));
        await().until(read::isDone);
        assertThat(ingested).isNotDone();
        assertThat(read.join().get(0)).as("ingested: no chunk learned yet").isEqualTo(0L);
        assertThat((int) read.join().get(1)).as("window size").isLessThan(HOLD_AT);

        predictor.release.countDown();
        assertThat(ingested.join()).isEqualTo(RouteBook.MAX_SAMPLES_PER_MESSAGE);
        assertThat(book.ingested()).isEqualTo(RouteBook.MAX_SAMPLES_PER_MESSAGE);
        assertThat(book.windowSize()).isEqualTo(RouteBook.MAX_SAMPLES_PER_MESSAGE);
    }

    @Test
    void aPrediction_isAnsweredAtTheEndOfTheChunkBeingLearned_notAfterTheWholeMessage() throws Exception {
        CompletableFuture<Integer> ingested = ingestHeldMidway();

        // A PredictPaths prediction arrives while the message is held mid-way, and waits for the book's lock.
        CompletableFuture<int[]> prediction = new CompletableFuture<>();
        Thread reader = new Thread(() -> prediction.complete(book.predict(7, new int[TestRoutes.SHAPE.layers()][],
                null, 1, 2)));
        predictor.reader = reader;
        reader.start();
        await().until(() -> reader.getState() == Thread.State.WAITING || reader.getState() == Thread.State.BLOCKED);
        predictor.release.countDown();

        assertThat(ingested.get()).isEqualTo(RouteBook.MAX_SAMPLES_PER_MESSAGE);
        assertThat(prediction.get()).hasSize(2);
        // Answered once the chunk it waited behind was learned, ahead of the rest of the message.
        assertThat(predictor.learnedWhenReaderPredicted.get()).isEqualTo(RouteBook.INGEST_CHUNK)
                .isLessThan(RouteBook.MAX_SAMPLES_PER_MESSAGE);
    }
}
