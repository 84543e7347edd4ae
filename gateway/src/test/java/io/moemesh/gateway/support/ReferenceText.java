package io.moemesh.gateway.support;

import io.moemesh.model.MoeModel;
import io.moemesh.model.generate.GenerationRequest;
import io.moemesh.model.generate.Generator;
import io.moemesh.model.generate.SamplingParams;
import io.moemesh.model.generate.TokenListener;
import java.util.List;
import java.util.OptionalLong;

/** What a request through the gateway must give: the reference engine's greedy text, in one process, local KV only. */
public final class ReferenceText {
    private ReferenceText() {
    }

    /** The greedy text of {@code tokens} tokens after the prompt (BOS as the model adds it), EOS ignored. */
    public static String greedy(MoeModel model, int[] prompt, int tokens) {
        GenerationRequest r = new GenerationRequest(model.withBos(prompt), new SamplingParams(0, 1, 0,
                OptionalLong.empty(), tokens, true), false, 0);
        int[] ids = new Generator(model.localEngine(), model.newCache(1024), 512).generate(List.of(r),
                TokenListener.NONE).getFirst().generatedIds();
        return model.tokenizer().decode(ids, true);
    }
}
