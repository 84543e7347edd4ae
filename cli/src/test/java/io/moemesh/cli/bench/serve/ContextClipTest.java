package io.moemesh.cli.bench.serve;

import static org.assertj.core.api.Assertions.assertThat;

import io.moemesh.model.golden.TestModels;
import io.moemesh.model.tokenizer.Tokenizer;
import java.util.OptionalInt;
import java.util.Set;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class ContextClipTest {

    @ParameterizedTest(name = "in {0} out {1} ctx {2} -> in {3} out {4} clipped {5}")
    @CsvSource({
        "100, 50, 512, 100, 50, false",
        "462, 50, 512, 462, 50, false",   // exactly the context
        "4000, 200, 512, 312, 200, true", // long prompt: cut to leave room for the completion
        "100, 1000, 512, 100, 412, true", // long completion: the prompt stays, the completion shrinks
        "4000, 4000, 512, 256, 256, true", // both long: the prompt keeps half the context
        "0, 0, 512, 1, 1, false",          // at least one token each
    })
    void clip(int in, int out, int ctx, int wantIn, int wantOut, boolean clipped) {
        ContextClip c = ContextClip.of(in, out, ctx);
        assertThat(c).isEqualTo(new ContextClip(wantIn, wantOut, clipped));
        assertThat(c.inputTokens() + c.outputTokens()).isLessThanOrEqualTo(ctx);
    }

    @Test
    void azureWorkload_countsClippedRequests() {
        Workload.Pacing replay = new Workload.Pacing(Double.POSITIVE_INFINITY, false, false, 2.0, 0);
        RandomIdPromptMaker ids = new RandomIdPromptMaker(512, Set.of(0, 1), OptionalInt.of(0), t -> new int[] {0});
        // Rows: 100+20, 40+300, 900+10, 60+5 against a context of 256: rows 2 and 3 do not fit.
        Workload w = Workload.azure(WorkloadSourcesTest.resource("azure_tiny.csv"), 10, ids, 256, replay);

        assertThat(w.clipped()).isEqualTo(2);
        assertThat(w.prompts()).extracting(BenchPrompt::promptTokens).containsExactly(100, 40, 246, 60);
        assertThat(w.prompts()).extracting(BenchPrompt::maxTokens).containsExactly(20, 216, 10, 5);
        assertThat(w.arrivalSeconds()).containsExactly(0, 0.125, 0.75, 1.5);
        assertThat(w.prompts().get(0).ids()[0]).isZero(); // BOS first
        assertThat(w.prompts()).allSatisfy(p -> assertThat(p.ids()).hasSize(p.promptTokens()));
    }

    @Test
    void randomIds_avoidSpecialIds_andAreSeeded() {
        RandomIdPromptMaker ids = new RandomIdPromptMaker(8, Set.of(0, 1, 2), OptionalInt.of(0), t -> new int[0]);
        BenchPrompt a = ids.synthetic(200, 4, 4096, new SplittableRandom(5));

        assertThat(a.ids()[0]).isZero();
        assertThat(java.util.Arrays.stream(a.ids()).skip(1)).allSatisfy(id -> assertThat(id).isBetween(3, 7));
        assertThat(ids.synthetic(200, 4, 4096, new SplittableRandom(5)).ids()).containsExactly(a.ids());
    }

    @Test
    void tokenizerPrompts_haveExactlyTheWantedLength_withBos() {
        Tokenizer tok = Tokenizer.load(TestModels.dir(TestModels.MIXTRAL).resolve("tokenizer.json"));
        TokenizerPromptMaker maker = new TokenizerPromptMaker(tok, OptionalInt.of(0), true);
        SplittableRandom random = new SplittableRandom(1);
        for (int n : new int[] {2, 17, 32, 333, 1000}) {
            BenchPrompt p = maker.synthetic(n, 8, 4096, random.split());
            assertThat(p.promptTokens()).as("n=%d", n).isEqualTo(n);
            assertThat(tok.encode(p.text()).length + 1).as("n=%d", n).isEqualTo(n);
            assertThat(p.ids()).hasSize(n).startsWith(0);
        }
    }

    @Test
    void tokenizerPrompts_longTextIsClippedToTheContext() {
        Tokenizer tok = Tokenizer.load(TestModels.dir(TestModels.MIXTRAL).resolve("tokenizer.json"));
        TokenizerPromptMaker maker = new TokenizerPromptMaker(tok, OptionalInt.of(0), false);
        String text = "the quick brown fox jumps over the lazy dog ".repeat(50);

        BenchPrompt p = maker.text(text, 64, 128);
        assertThat(p.clipped()).isTrue();
        assertThat(p.promptTokens() + p.maxTokens()).isLessThanOrEqualTo(128);
        assertThat(p.promptTokens()).isEqualTo(tok.encode(p.text()).length + 1);
        assertThat(p.ids()).isNull();
        assertThat(maker.text("short", 64, 128).clipped()).isFalse();
    }
}
