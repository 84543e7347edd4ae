package io.moemesh.model.engine;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.moemesh.model.MoeModel;
import io.moemesh.model.config.ModelConfig;
import io.moemesh.model.generate.GenerationRequest;
import io.moemesh.model.generate.GenerationResult;
import io.moemesh.model.generate.PreemptionPolicy;
import io.moemesh.model.generate.SamplingParams;
import io.moemesh.model.generate.SequenceListener;
import io.moemesh.model.generate.StepScheduler;
import io.moemesh.model.golden.TestModels;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * What happens when the remote prefix's attention cannot be had: the step fails with a {@link
 * RemoteAttentionException} naming the layer and the sequences (as an expert failure fails it), the cache is not
 * told it completed, and the scheduler ends that step's sequences with the error and goes on with the others; a
 * remote prefix the engine cannot use is refused before anything is computed; without remote prefixes the
 * {@link RemoteAttention} is never called and the logits are bit for bit those of an engine without one.
 */
class RemoteAttentionFailureTest {
    private static MoeModel model;
    private static final int R = 16;

    @BeforeAll
    static void open() {
        model = MoeModel.open(TestModels.dir(TestModels.MIXTRAL));
    }

    @AfterAll
    static void close() {
        model.close();
    }

    private static Engine engine(RemoteAttention remote) {
        ModelConfig c = model.config();
        return new Engine(c, model.denseWeights(), LocalExperts.fromStore(model.tensors(), c), RouteObserver.NONE,
                LookaheadObserver.NONE, remote);
    }

    private static InMemoryRemoteAttention service(int[] prompt) {
        ModelConfig c = model.config();
        PagedKvCache full = model.newCache(64);
        engine(RemoteAttention.NONE).step(List.of(new SequenceStep(1, prompt, 0, SequenceStep.Logits.NONE, false)),
                full);
        InMemoryRemoteAttention service = new InMemoryRemoteAttention(c.numKvHeads());
        service.copyPrefix(1, full, c.numLayers(), c.kvDim(), R);
        return service;
    }

    private static int[] prompt() {
        int[] p = new int[R + 4];
        for (int i = 0; i < p.length; i++) {
            p[i] = 3 + 7 * i;
        }
        return p;
    }

    @ParameterizedTest(name = "fails in {0}")
    @ValueSource(strings = {"start", "await"})
    void remoteAttentionThrows_stepFailsWithRemoteAttentionException_andNeverCompletes(String where) {
        int[] prompt = prompt();
        InMemoryRemoteAttention service = service(prompt);
        IllegalStateException cause = new IllegalStateException("kvcache-service: UNAVAILABLE");
        service.failLayer = 1;
        if (where.equals("start")) {
            service.failStartAt = cause;
        } else {
            service.failAwaitAt = cause;
        }
        List<String> events = new ArrayList<>();
        RemotePrefixKvCache cache = new RemotePrefixKvCache(model.newCache(64)) {
            @Override
            public void stepStarted(StepContext step) {
                events.add("started");
            }

            @Override
            public void stepCompleted(StepContext step) {
                events.add("completed");
            }
        };
        cache.setRemotePrefix(1, R);
        List<SequenceStep> step = List.of(
                new SequenceStep(1, Arrays.copyOfRange(prompt, R, prompt.length), R,
                        SequenceStep.Logits.LAST, false),
                new SequenceStep(2, new int[] {5, 6}, 0, SequenceStep.Logits.LAST, false));
        assertThatThrownBy(() -> engine(service).step(step, cache))
                .isInstanceOf(RemoteAttentionException.class)
                .hasMessage("layer 1: remote attention over the prefixes of sequences [1] failed: "
                        + "kvcache-service: UNAVAILABLE")
                .hasCause(cause);
        assertThat(events).containsExactly("started");
    }

    @Test
    void remotePartialNotANumber_failsTheStep_insteadOfAWrongToken() {
        int[] prompt = prompt();
        InMemoryRemoteAttention service = service(prompt);
        service.nanLse = true;
        RemotePrefixKvCache cache = new RemotePrefixKvCache(model.newCache(64));
        cache.setRemotePrefix(1, R);
        assertThatThrownBy(() -> engine(service).step(List.of(new SequenceStep(1,
                Arrays.copyOfRange(prompt, R, prompt.length), R, SequenceStep.Logits.LAST, false)), cache))
                .isInstanceOf(RemoteAttentionException.class)
                .hasMessage("layer 0: remote attention over the prefixes of sequences [1] failed: "
                        + "lse of sequence 1 head 0 is NaN");
    }

    @Test
    void remotePrefix_withoutRemoteAttention_isRefusedBeforeTheStepStarts() {
        List<String> events = new ArrayList<>();
        RemotePrefixKvCache cache = new RemotePrefixKvCache(model.newCache(64)) {
            @Override
            public void stepStarted(StepContext step) {
                events.add("started");
            }
        };
        cache.setRemotePrefix(1, R);
        assertThatThrownBy(() -> engine(RemoteAttention.NONE).step(List.of(SequenceStep.decode(1, 5, R)), cache))
                .isInstanceOf(IllegalStateException.class)
                .hasMessage("sequence 1 has a remote prefix of 16 positions but the engine has no RemoteAttention "
                        + "to attend over it");
        assertThat(events).isEmpty();
    }

    @ParameterizedTest(name = "R={0} start={1}")
    @CsvSource({"8, 16", "32, 16", "-16, 16"})
    void remotePrefix_offABlockBoundaryOrPastTheStart_isRefused(int prefix, int start) {
        InMemoryRemoteAttention service = new InMemoryRemoteAttention(model.config().numKvHeads());
        RemotePrefixKvCache cache = new RemotePrefixKvCache(model.newCache(64));
        cache.setRemotePrefix(1, prefix);
        assertThatThrownBy(() -> engine(service).step(List.of(SequenceStep.decode(1, 5, start)), cache))
                .isInstanceOf(IllegalStateException.class)
                .hasMessage("sequence 1: remote prefix " + prefix + " must be a multiple of the block size 16 and "
                        + "at most the step's start position " + start);
        assertThat(service.calls).isZero();
    }

    @Test
    void withoutRemotePrefixes_remoteAttentionIsNeverCalled_andLogitsAreBitForBitTheSame() {
        InMemoryRemoteAttention service = new InMemoryRemoteAttention(model.config().numKvHeads());
        Engine withRemote = engine(service);
        Engine without = engine(RemoteAttention.NONE);
        List<SequenceStep> step = List.of(new SequenceStep(1, prompt(), 0, SequenceStep.Logits.ALL, false));
        // One run each decides: the kernels give the same bits in every JIT tier (JitTierBitsTest).
        float[] a = withRemote.step(step, new RemotePrefixKvCache(model.newCache(64))).getFirst().logits();
        float[] b = without.step(step, model.newCache(64)).getFirst().logits();
        assertThat(a).isEqualTo(b);
        assertThat(service.calls).isZero();
    }

    /** Mirrors an expert failure: the step's sequences end with the error; a later request is served. */
    @Test
    void scheduler_endsTheFailedStepsSequencesWithTheError_andServesTheNextRequest() {
        InMemoryRemoteAttention service = service(prompt());
        service.failLayer = 2;
        service.failAwaitAt = new IllegalStateException("deadline exceeded");
        RemotePrefixKvCache cache = new RemotePrefixKvCache(model.newCache(256));
        // The prefix source hands the first R positions of long prompts to the "service", as issue 11's gateway does.
        StepScheduler scheduler = new StepScheduler(engine(service), cache, 64, 4, (seqId, tokens, tenant) -> {
            if (tokens.length > R) {
                cache.setRemotePrefix(seqId, R);
                return R;
            }
            return 0;
        }, PreemptionPolicy.RECOMPUTE);
        CompletableFuture<Object> remote = new CompletableFuture<>();
        scheduler.submit(new GenerationRequest(prompt(), SamplingParams.greedy(3), false), listener(remote));
        while (!remote.isDone() && scheduler.step()) {
            // one engine step per iteration
        }
        assertThat(remote).isCompletedWithValueMatching(e -> e instanceof RemoteAttentionException
                && ((Throwable) e).getMessage().startsWith("layer 2: remote attention"));

        CompletableFuture<Object> local = new CompletableFuture<>();
        scheduler.submit(new GenerationRequest(new int[] {1, 2, 3}, SamplingParams.greedy(3), false), listener(local));
        while (!local.isDone() && scheduler.step()) {
            // one engine step per iteration
        }
        assertThat(local).isCompletedWithValueMatching(r -> r instanceof GenerationResult g
                && g.generatedIds().length == 3);
    }

    private static SequenceListener listener(CompletableFuture<Object> done) {
        return new SequenceListener() {
            @Override
            public void onToken(int token) {
            }

            @Override
            public void onFinish(GenerationResult result) {
                done.complete(result);
            }

            @Override
            public void onError(Throwable error) {
                done.complete(error);
            }
        };
    }
}
