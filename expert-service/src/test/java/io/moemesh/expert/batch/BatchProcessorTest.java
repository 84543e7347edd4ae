package io.moemesh.expert.batch;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;
import static org.awaitility.Awaitility.await;

import io.moemesh.expert.assignment.Assignment;
import io.moemesh.expert.assignment.AssignmentManager;
import io.moemesh.expert.assignment.ExpertNotHeldException;
import io.moemesh.expert.backend.BatchInput;
import io.moemesh.expert.backend.CpuExpertBackend;
import io.moemesh.expert.backend.NoOpExpertBackend;
import io.moemesh.expert.backend.ExpertBackend;
import io.moemesh.expert.backend.ExpertLookup;
import io.moemesh.expert.backend.ExpertModel;
import io.moemesh.expert.backend.LoadedExpert;
import io.moemesh.expert.residency.ResidentSet;
import io.moemesh.expert.support.Routing;
import io.moemesh.model.engine.ExpertKey;
import io.moemesh.model.engine.LocalExperts;
import io.moemesh.model.engine.TestSteps;
import io.moemesh.model.golden.TestModels;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class BatchProcessorTest {
    private static ExpertModel model;
    private static int h;

    @BeforeAll
    static void open() {
        model = ExpertModel.open(TestModels.dir(TestModels.MIXTRAL)); // 4 layers × 8 experts, hidden 64
        h = model.hiddenSize();
    }

    @AfterAll
    static void close() {
        model.close();
    }

    private record Outcome(BatchResult result, Throwable error) {
    }

    /** The noop backend (inline up to its bound) with {@code onLoad} seeing each load and {@code before} each compute. */
    private record NoOpWith(String name, java.util.function.Consumer<ExpertKey> onLoad,
                            java.util.function.BiConsumer<BatchInput, ExpertLookup> before) implements ExpertBackend {
        private static final NoOpExpertBackend NOOP = new NoOpExpertBackend(64);

        @Override
        public LoadedExpert load(ExpertKey key) {
            onLoad.accept(key);
            return NOOP.load(key);
        }

        @Override
        public void compute(BatchInput batch, ExpertLookup experts, float[] out) {
            before.accept(batch, experts);
            NOOP.compute(batch, experts, out);
        }

        @Override
        public int inlineMaxTokens() {
            return NOOP.inlineMaxTokens();
        }
    }

    private static Outcome run(BatchProcessor p, BatchInput in, long epoch) {
        CompletableFuture<Outcome> f = new CompletableFuture<>();
        p.submit(new BatchRequest(epoch, in), System.nanoTime(), (r, e) -> f.complete(new Outcome(r, e)));
        return f.orTimeout(30, TimeUnit.SECONDS).join();
    }

    private static AssignmentManager holding(ResidentSet resident, List<ExpertKey> keys) {
        return new AssignmentManager(model, "expert-0", resident, Assignment.of(0, keys), Duration.ofSeconds(10),
                System::nanoTime);
    }

    private static BatchProcessor processor(ExpertBackend backend, List<ExpertKey> held, int threads, int queue) {
        ResidentSet resident = new ResidentSet(Long.MAX_VALUE, backend::load);
        return new BatchProcessor(model, backend, resident, holding(resident, held), new LoadTracker(System::nanoTime),
                System::nanoTime, threads, queue);
    }

    private static List<ExpertKey> all() {
        return java.util.stream.IntStream.range(0, 4 * 8).mapToObj(i -> new ExpertKey(i / 8, i % 8)).toList();
    }

    @Test
    void validBatch_isComputedOffTheCallerThread_likeTheReferenceEngine() {
        try (BatchProcessor p = processor(new CpuExpertBackend(model), all(), 2, 8)) {
            Routing r = Routing.random(model.config(), 1, 6, 3);
            Outcome o = run(p, r.input(), 0);
            assertThat(o.error()).isNull();
            float[] want = new float[6 * h];
            LocalExperts.fromStore(model.store(), model.config()).run(TestSteps.rows(6), 1, r.x(), r.experts(), r.weights(),
                    2, want);
            assertThat(o.result().out()).containsExactly(want, within(1e-6f));
            assertThat(o.result().queueNanos()).isNotNegative();
            assertThat(o.result().computeNanos()).isPositive();
        }
    }

    /**
     * The service passes reused arrays (TensorArrayPool) for the outputs: whatever they held before, the result is
     * the reference engine's, written into that very array, on both backends.
     */
    @ParameterizedTest(name = "{0}")
    @CsvSource({"cpu", "noop"})
    void callersOutputArray_isOverwrittenWhateverItHeld(String backendName) {
        ExpertBackend backend = backendName.equals("noop") ? new NoOpExpertBackend(h) : new CpuExpertBackend(model);
        try (BatchProcessor p = processor(backend, all(), 1, 4)) {
            Routing r = Routing.random(model.config(), 2, 5, 11);
            float[] clean = run(p, r.input(), 0).result().out();
            float[] dirty = new float[5 * h];
            java.util.Arrays.fill(dirty, Float.NaN);
            CompletableFuture<Outcome> f = new CompletableFuture<>();
            p.submit(new BatchRequest(0, r.input(), dirty), System.nanoTime(), (res, e) -> f.complete(new Outcome(res, e)));
            Outcome o = f.orTimeout(30, TimeUnit.SECONDS).join();
            assertThat(o.error()).isNull();
            assertThat(o.result().out()).isSameAs(dirty).containsExactly(clean);
        }
    }

    @Test
    void callersOutputArrayOfTheWrongLength_isRefused_namingBothSizes() {
        try (BatchProcessor p = processor(new NoOpExpertBackend(h), all(), 1, 4)) {
            Routing r = Routing.random(model.config(), 0, 3, 2);
            CompletableFuture<Outcome> f = new CompletableFuture<>();
            p.submit(new BatchRequest(0, r.input(), new float[2 * h]), System.nanoTime(),
                    (res, e) -> f.complete(new Outcome(res, e)));
            assertThat(f.orTimeout(30, TimeUnit.SECONDS).join().error()).isExactlyInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining("output array of " + 2 * h + " floats for 3 tokens of hidden size " + h);
        }
    }

    @ParameterizedTest(name = "{0} -> {1}")
    @CsvSource(delimiter = '|', value = {"3,1,3,0,1 | 0,1,3", "5 | 5", "7,7,7 | 7", "2,0,1 | 0,1,2"})
    void distinctExperts_sortedWithoutRepeats(String experts, String want) {
        int[] e = java.util.Arrays.stream(experts.split(",")).mapToInt(Integer::parseInt).toArray();
        int[] counts = new int[e.length];
        java.util.Arrays.fill(counts, 1);
        BatchInput in = new BatchInput(0, e.length, new float[e.length * h], counts, e, new float[e.length]);
        assertThat(BatchProcessor.distinctExperts(in))
                .containsExactly(java.util.Arrays.stream(want.split(",")).mapToInt(Integer::parseInt).toArray());
        assertThat(in.experts()).containsExactly(e); // the message's own array is left as it came
    }

    /**
     * The inline rule: a batch within both the service's bound (8 here) and the backend's (noop: any; cpu: 4) runs
     * on the submitting thread (the transport thread in the service), a larger one on a worker.
     */
    @ParameterizedTest(name = "{0} tokens on {1}: inline = {2}")
    @CsvSource({"1, noop, true", "8, noop, true", "9, noop, false", "1, cpu, true", "4, cpu, true", "5, cpu, false"})
    void batchWithinTheInlineBounds_isComputedOnTheCallersThread(int tokens, String backendName, boolean inline) {
        ExpertBackend backend = backendName.equals("noop") ? new NoOpExpertBackend(h) : new CpuExpertBackend(model);
        ResidentSet resident = new ResidentSet(Long.MAX_VALUE, backend::load);
        try (BatchProcessor p = new BatchProcessor(model, backend, resident, holding(resident, all()),
                new LoadTracker(System::nanoTime), System::nanoTime, 2, 8, 8)) {
            resident.preload(all());
            Routing r = Routing.random(model.config(), 1, tokens, 5);
            CompletableFuture<Thread> answeredOn = new CompletableFuture<>();
            p.submit(new BatchRequest(0, r.input()), System.nanoTime(), (res, e) -> answeredOn.complete(Thread.currentThread()));
            assertThat(answeredOn.orTimeout(30, TimeUnit.SECONDS).join() == Thread.currentThread()).isEqualTo(inline);
        }
    }

    /**
     * The inline rule counts pairs too: on the cpu backend (4 tokens) a batch may have 4 tokens' routed pairs (top-2
     * of mixtral-tiny: 8) to run on the caller's thread, so one token may use every expert, but two tokens listing
     * every expert (16 pairs, twice the weights of a decode step) go to a worker.
     */
    @ParameterizedTest(name = "{0} tokens × {1} experts: inline = {2}")
    @CsvSource({"1, 2, true", "1, 8, true", "4, 2, true", "2, 8, false", "3, 4, false"})
    void batchOfFewTokens_withMorePairsThanThatManyRoutedTokensHave_goesToAWorker(int tokens, int expertsPerToken,
                                                                                   boolean inline) {
        ExpertBackend backend = new CpuExpertBackend(model);
        ResidentSet resident = new ResidentSet(Long.MAX_VALUE, backend::load);
        try (BatchProcessor p = new BatchProcessor(model, backend, resident, holding(resident, all()),
                new LoadTracker(System::nanoTime), System::nanoTime, 2, 8, 8)) {
            resident.preload(all());
            int[] counts = new int[tokens];
            java.util.Arrays.fill(counts, expertsPerToken);
            int[] experts = new int[tokens * expertsPerToken];
            float[] weights = new float[experts.length];
            for (int i = 0; i < experts.length; i++) {
                experts[i] = i % expertsPerToken;
                weights[i] = 0.5f;
            }
            BatchInput in = new BatchInput(1, tokens, Routing.random(model.config(), 1, tokens, 5).x(), counts, experts,
                    weights);
            CompletableFuture<Thread> answeredOn = new CompletableFuture<>();
            p.submit(new BatchRequest(0, in), System.nanoTime(),
                    (res, e) -> answeredOn.complete(e == null ? Thread.currentThread() : null));
            Thread on = answeredOn.orTimeout(30, TimeUnit.SECONDS).join();
            assertThat(on).as("computed, without an error").isNotNull();
            assertThat(on == Thread.currentThread()).isEqualTo(inline);
        }
    }

    /**
     * An inline batch takes its experts when it is found inline (all resident): an eviction while it computes (another
     * batch's miss, a prefetch, a new assignment) must not make it load an expert on the transport thread.
     */
    @Test
    void inlineBatch_whoseExpertsAreEvictedWhileItComputes_neverLoadsOnTheCallersThread() {
        java.util.List<Thread> loadedOn = new java.util.concurrent.CopyOnWriteArrayList<>();
        ResidentSet[] resident = new ResidentSet[1];
        ExpertBackend evictingFirst = new NoOpWith("evicting-first", key -> loadedOn.add(Thread.currentThread()),
                (batch, experts) -> {
                    resident[0].restrictTo(k -> false); // everything evicted just as the compute starts
                    for (int e : batch.experts()) {
                        experts.get(new ExpertKey(batch.layer(), e)); // what a real backend does for its weights
                    }
                });
        resident[0] = new ResidentSet(Long.MAX_VALUE, evictingFirst::load);
        try (BatchProcessor p = new BatchProcessor(model, evictingFirst, resident[0], holding(resident[0], all()),
                new LoadTracker(System::nanoTime), System::nanoTime, 2, 8, 8)) {
            resident[0].preload(all());
            loadedOn.clear();
            Routing r = Routing.random(model.config(), 1, 2, 5);
            CompletableFuture<Thread> answeredOn = new CompletableFuture<>();
            p.submit(new BatchRequest(0, r.input()), System.nanoTime(),
                    (res, e) -> answeredOn.complete(e == null ? Thread.currentThread() : null));
            assertThat(answeredOn.orTimeout(30, TimeUnit.SECONDS).join()).as("computed inline, without an error")
                    .isSameAs(Thread.currentThread());
            assertThat(loadedOn).doesNotContain(Thread.currentThread());
        }
    }

    /**
     * On the transport thread (inline) an Error of one batch's compute that is not the VM's own (an InternalError from
     * a fault reading a truncated mapped file) is that batch's answer only: thrown on, it would end the whole stream.
     */
    @Test
    void aNonVmErrorInTheBackend_inline_answersThatBatch_andTheNextIsComputed() {
        boolean[] broken = {true};
        ExpertBackend once = new NoOpWith("broken once", key -> { }, (batch, experts) -> {
            if (broken[0]) {
                broken[0] = false;
                throw new InternalError("a fault occurred in an unsafe memory access");
            }
        });
        ResidentSet resident = new ResidentSet(Long.MAX_VALUE, once::load);
        try (BatchProcessor p = new BatchProcessor(model, once, resident, holding(resident, all()),
                new LoadTracker(System::nanoTime), System::nanoTime, 2, 8, 8)) {
            resident.preload(all());
            CompletableFuture<Throwable> answered = new CompletableFuture<>();
            // inline: computed on this thread, which submit returns to normally
            p.submit(new BatchRequest(0, Routing.random(model.config(), 1, 2, 5).input()), System.nanoTime(),
                    (res, e) -> answered.complete(e));
            assertThat(answered.orTimeout(30, TimeUnit.SECONDS).join()).isInstanceOf(InternalError.class);
            assertThat(run(p, Routing.random(model.config(), 1, 2, 6).input(), 0).error()).isNull();
        }
    }

    /**
     * The VM's own errors (OutOfMemoryError) are answered, then never swallowed, inline or not: they end the thread
     * they hit, and with -XX:+ExitOnOutOfMemoryError the service.
     */
    @Test
    void aVmErrorInTheBackend_inline_answersTheBatch_andIsNotSwallowed() {
        ExpertBackend broken = new NoOpWith("broken", key -> { }, (batch, experts) -> {
            throw new OutOfMemoryError("Java heap space");
        });
        ResidentSet resident = new ResidentSet(Long.MAX_VALUE, broken::load);
        try (BatchProcessor p = new BatchProcessor(model, broken, resident, holding(resident, all()),
                new LoadTracker(System::nanoTime), System::nanoTime, 2, 8, 8)) {
            resident.preload(all());
            CompletableFuture<Throwable> answered = new CompletableFuture<>();
            // inline: on this thread, which the Error reaches
            org.assertj.core.api.Assertions.assertThatThrownBy(() -> p.submit(new BatchRequest(0,
                    Routing.random(model.config(), 1, 2, 5).input()), System.nanoTime(),
                    (res, e) -> answered.complete(e))).isInstanceOf(OutOfMemoryError.class);
            assertThat(answered.orTimeout(30, TimeUnit.SECONDS).join()).isInstanceOf(OutOfMemoryError.class);
        }
    }

    @ParameterizedTest(name = "{0} is INVALID_ARGUMENT")
    @CsvSource(delimiter = '|', value = {
        "unknown layer             | layer 4 does not exist",
        "counts for fewer tokens   | token_expert_counts has 1 entries for 2 tokens",
        "counts not summing        | token_expert_counts sum to 3 but experts has 2 entries",
        "weights length            | weights has 1 entries but experts has 2",
        "expert out of range       | experts[1]: layer 0 expert 8 does not exist",
        "NaN weight                | weights[0] is NaN",
        "infinite weight           | weights[1] is Infinity",
        "activations of wrong size | activations: 64 floats for 2 tokens",
        "zero tokens               | num_tokens must be >= 1",
        "expert twice for a token  | experts[2]: expert 1 is listed twice for token 1",
    })
    void malformedBatch_isRefusedAlone_namingTheProblem(String kase, String message) {
        float[] x2 = new float[2 * h];
        BatchInput in = switch (kase.strip()) {
            case "unknown layer" -> new BatchInput(4, 2, x2, new int[] {1, 1}, new int[] {0, 1}, new float[] {1, 1});
            case "counts for fewer tokens" -> new BatchInput(0, 2, x2, new int[] {2}, new int[] {0, 1}, new float[] {1, 1});
            case "counts not summing" -> new BatchInput(0, 2, x2, new int[] {2, 1}, new int[] {0, 1}, new float[] {1, 1});
            case "weights length" -> new BatchInput(0, 2, x2, new int[] {1, 1}, new int[] {0, 1}, new float[] {1});
            case "expert out of range" -> new BatchInput(0, 2, x2, new int[] {1, 1}, new int[] {0, 8}, new float[] {1, 1});
            case "NaN weight" -> new BatchInput(0, 2, x2, new int[] {1, 1}, new int[] {0, 1}, new float[] {Float.NaN, 1});
            case "infinite weight" -> new BatchInput(0, 2, x2, new int[] {1, 1}, new int[] {0, 1},
                    new float[] {1, Float.POSITIVE_INFINITY});
            case "activations of wrong size" -> new BatchInput(0, 2, new float[h], new int[] {1, 1}, new int[] {0, 1},
                    new float[] {1, 1});
            // expert 1 for both tokens is fine; the second time for token 1 is not
            case "expert twice for a token" -> new BatchInput(0, 2, x2, new int[] {1, 2}, new int[] {1, 1, 1},
                    new float[] {1, 1, 1});
            default -> new BatchInput(0, 0, new float[0], new int[0], new int[0], new float[0]);
        };
        try (BatchProcessor p = processor(new CpuExpertBackend(model), all(), 1, 1)) {
            Outcome o = run(p, in, 0);
            assertThat(o.error()).isExactlyInstanceOf(IllegalArgumentException.class).hasMessageContaining(message);
            assertThat(run(p, Routing.random(model.config(), 0, 2, 1).input(), 0).error()).isNull();
        }
    }

    @Test
    void expertNotHeld_isFailedPrecondition_beforeAnyCompute() {
        try (BatchProcessor p = processor(new CpuExpertBackend(model), List.of(new ExpertKey(0, 1)), 1, 1)) {
            BatchInput in = new BatchInput(0, 1, new float[h], new int[] {2}, new int[] {1, 5}, new float[] {1, 1});
            assertThat(run(p, in, 0).error()).isInstanceOf(ExpertNotHeldException.class)
                    .hasMessage("layer 0 expert 5 is not held by expert-0 (epoch 0)");
        }
    }

    @Test
    void saturatedWorkers_refuseTheNextBatch_withResourceExhausted_insteadOfQueueingWithoutBound() throws Exception {
        CountDownLatch started = new CountDownLatch(1);
        CountDownLatch release = new CountDownLatch(1);
        ExpertBackend blocking = new ExpertBackend() {
            @Override
            public String name() {
                return "blocking";
            }

            @Override
            public LoadedExpert load(ExpertKey key) {
                return new LoadedExpert() {
                    public ExpertKey key() {
                        return key;
                    }

                    public long byteSize() {
                        return 0;
                    }
                };
            }

            @Override
            public void compute(BatchInput batch, ExpertLookup experts, float[] out) {
                started.countDown();
                try {
                    release.await(30, TimeUnit.SECONDS);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }
        };
        ResidentSet resident = new ResidentSet(0, blocking::load);
        LoadTracker load = new LoadTracker(System::nanoTime);
        try (BatchProcessor p = new BatchProcessor(model, blocking, resident, holding(resident, all()), load,
                System::nanoTime, 1, 0)) {
            CompletableFuture<Outcome> first = new CompletableFuture<>();
            BatchInput in = Routing.random(model.config(), 0, 1, 1).input();
            p.submit(new BatchRequest(0, in), System.nanoTime(), (r, e) -> first.complete(new Outcome(r, e)));
            assertThat(started.await(30, TimeUnit.SECONDS)).isTrue();
            assertThat(load.inFlightBatches()).isEqualTo(1);

            Outcome second = run(p, in, 0);
            assertThat(second.error()).isInstanceOf(RejectedExecutionException.class).hasMessageContaining("busy");
            release.countDown();
            assertThat(first.get(30, TimeUnit.SECONDS).error()).isNull();
            await().until(() -> load.inFlightBatches() == 0);
        }
    }
}
