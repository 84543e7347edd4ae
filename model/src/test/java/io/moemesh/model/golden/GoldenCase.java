package io.moemesh.model.golden;

import static io.moemesh.model.golden.JsonArrays.floats;
import static io.moemesh.model.golden.JsonArrays.ints;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/**
 * One prompt of a model's golden.json: outputs of the Hugging Face transformers reference.
 *
 * @param routerTopk    [layer][position][k]
 * @param greedyTop8Ids [step][8], greedyTop8Logits likewise
 */
public record GoldenCase(String model, String prompt, int[] inputIds, float[] lastLogits, int[] allArgmax,
                         int[][][] routerTopk, int[] greedyIds, String greedyText, int[][] greedyTop8Ids,
                         float[][] greedyTop8Logits) {

    @Override
    public String toString() {
        return model + ": " + prompt;
    }

    public static List<GoldenCase> load(String model) {
        Path file = TestModels.dir(model).resolve("golden.json");
        JsonNode root = JsonMapper.builder().build().readTree(file.toFile());
        List<GoldenCase> out = new ArrayList<>();
        for (JsonNode c : root.get("cases").values()) {
            JsonNode steps = c.get("greedy_step_top8");
            int[][] ids = new int[steps.size()][];
            float[][] logits = new float[steps.size()][];
            for (int s = 0; s < steps.size(); s++) {
                ids[s] = ints(steps.get(s).get("ids"));
                logits[s] = floats(steps.get(s).get("logits"));
            }
            JsonNode rt = c.get("router_topk");
            int[][][] routes = new int[rt.size()][][];
            for (int l = 0; l < rt.size(); l++) {
                routes[l] = new int[rt.get(l).size()][];
                for (int p = 0; p < rt.get(l).size(); p++) {
                    routes[l][p] = ints(rt.get(l).get(p));
                }
            }
            out.add(new GoldenCase(model, c.get("prompt").stringValue(), ints(c.get("input_ids")),
                    floats(c.get("last_logits")), ints(c.get("all_argmax")), routes, ints(c.get("greedy_ids")),
                    c.get("greedy_text").stringValue(), ids, logits));
        }
        return out;
    }

    public static List<GoldenCase> all(String... models) {
        List<GoldenCase> out = new ArrayList<>();
        for (String m : models) {
            out.addAll(load(m));
        }
        return out;
    }
}
