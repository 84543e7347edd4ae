package io.moemesh.cli;

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
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("input_ids", r.promptIds());
        m.put("generated_ids", r.generatedIds());
        m.put("text", text);
        m.put("finish_reason", r.finishReason().name().toLowerCase(java.util.Locale.ROOT));
        if (trace) {
            m.put("last_logits", r.lastLogits());
            m.put("router_topk", r.routerTopk());
        }
        return JSON.writeValueAsString(m);
    }
}
