package io.moemesh.cli;

import io.moemesh.cli.mesh.Generation;
import io.moemesh.model.generate.GenerationResult;
import java.util.LinkedHashMap;
import java.util.Map;
import tools.jackson.databind.json.JsonMapper;

/** The one-line JSON of {@code generate --json}: the same fields whether the engine is local or a mesh. */
final class GenerationJson {
    private static final JsonMapper JSON = JsonMapper.builder().build();

    private GenerationJson() {
    }

    static String of(GenerationResult r, String text, boolean trace) {
        return of(r.promptIds(), r.generatedIds(), text, r.finishReason().name().toLowerCase(java.util.Locale.ROOT),
                r.lastLogits(), r.routerTopk(), trace);
    }

    /** The same line from a mesh's Generate: the fields the gateway streamed and its final trace. */
    static String of(Generation g, boolean trace) {
        return of(g.inputIds(), g.generatedIds(), g.text(), g.finishReason(), g.lastLogits(), g.routerTopk(), trace);
    }

    private static String of(int[] inputIds, int[] generatedIds, String text, String finishReason, float[] lastLogits,
                             int[][][] routerTopk, boolean trace) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("input_ids", inputIds);
        m.put("generated_ids", generatedIds);
        m.put("text", text);
        m.put("finish_reason", finishReason);
        if (trace) {
            m.put("last_logits", lastLogits);
            m.put("router_topk", routerTopk);
        }
        return JSON.writeValueAsString(m);
    }
}
