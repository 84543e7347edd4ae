package io.moemesh.e2e;

import static org.assertj.core.api.Assertions.within;

import io.moemesh.cli.mesh.Generation;
import io.moemesh.model.golden.GoldenCase;
import io.moemesh.proto.gateway.v1.GenerateRequest;
import io.moemesh.proto.gateway.v1.InstanceDispatch;
import io.moemesh.proto.gateway.v1.LayerDispatch;
import io.moemesh.proto.gateway.v1.SamplingParams;
import io.moemesh.service.placement.PlacementTable;
import java.util.Arrays;
import java.util.Set;
import java.util.TreeSet;
import org.assertj.core.api.SoftAssertions;

/** Compares a mesh's traced Generate with the transformers reference outputs of a golden case. */
final class GoldenAssert {
    static final float LOGIT_TOLERANCE = 1e-4f;

    private GoldenAssert() {
    }

    /** The request of a golden case: its prompt, 16 greedy tokens, traced. */
    static GenerateRequest request(GoldenCase g) {
        return GenerateRequest.newBuilder().setPrompt(g.prompt()).setTrace(true)
                .setSampling(SamplingParams.newBuilder().setMaxTokens(g.greedyIds().length)).build();
    }

    /** Ids, router choices and greedy tokens equal; last-position logits within {@link #LOGIT_TOLERANCE}. */
    static void matchesGolden(SoftAssertions soft, GoldenCase g, int[] inputIds, int[] generatedIds, String text,
                              float[] lastLogits, int[][][] routerTopk) {
        soft.assertThat(inputIds).as("%s: input_ids", g).containsExactly(g.inputIds());
        soft.assertThat(generatedIds).as("%s: greedy ids", g).containsExactly(g.greedyIds());
        soft.assertThat(text).as("%s: text", g).isEqualTo(g.greedyText());
        soft.assertThat(lastLogits).as("%s: last_logits", g).isNotNull();
        if (lastLogits != null) {
            soft.assertThat(lastLogits).as("%s: last_logits", g).containsExactly(g.lastLogits(), within(LOGIT_TOLERANCE));
        }
        soft.assertThat(routerTopk != null).as("%s: router_topk present", g).isTrue();
        if (routerTopk != null) {
            soft.assertThat(routerTopk.length).as("%s: router_topk layers", g).isEqualTo(g.routerTopk().length);
            for (int l = 0; l < Math.min(routerTopk.length, g.routerTopk().length); l++) {
                // as text: SoftAssertions cannot proxy the 2-d array asserts
                soft.assertThat(Arrays.deepToString(routerTopk[l])).as("%s: router_topk layer %d", g, l)
                        .isEqualTo(Arrays.deepToString(g.routerTopk()[l]));
            }
        }
    }

    static void matchesGolden(SoftAssertions soft, GoldenCase g, Generation r) {
        matchesGolden(soft, g, r.inputIds(), r.generatedIds(), r.text(), r.lastLogits(), r.routerTopk());
    }

    /**
     * The trace's dispatch follows the placement: only instances of it, each applying only experts it holds,
     * together exactly the experts the router chose at that layer (plus the shared expert), and never more
     * rows to an instance than the prompt has.
     */
    static void dispatchFollows(SoftAssertions soft, GoldenCase g, Generation r, PlacementTable table, int numExperts,
                                boolean sharedExpert) {
        soft.assertThat(r.trace().getPlacementEpoch()).as("%s: placement_epoch", g).isEqualTo(table.epoch());
        soft.assertThat(r.trace().getDispatchCount()).as("%s: dispatch layers", g).isEqualTo(g.routerTopk().length);
        int promptTokens = g.inputIds().length;
        for (LayerDispatch ld : r.trace().getDispatchList()) {
            int layer = ld.getLayer();
            Set<Integer> applied = new TreeSet<>();
            for (InstanceDispatch d : ld.getInstancesList()) {
                int idx = table.instanceIndex(d.getInstanceId());
                soft.assertThat(idx).as("%s: layer %d instance %s is in epoch %d", g, layer, d.getInstanceId(), table.epoch())
                        .isNotNegative();
                soft.assertThat(d.getTokenCount()).as("%s: layer %d tokens to %s", g, layer, d.getInstanceId())
                        .isBetween(1, promptTokens);
                for (int e : d.getExpertsList()) {
                    applied.add(e);
                    if (idx >= 0) {
                        soft.assertThat(table.holders()[layer][e]).as("%s: layer %d expert %d held by %s", g, layer, e,
                                d.getInstanceId()).contains(idx);
                    }
                }
            }
            Set<Integer> routed = new TreeSet<>();
            Arrays.stream(g.routerTopk()[layer]).flatMapToInt(Arrays::stream).forEach(routed::add);
            if (sharedExpert) {
                routed.add(numExperts);
            }
            soft.assertThat(applied).as("%s: layer %d experts applied", g, layer).isEqualTo(routed);
            if (table.instances().size() == 1) {
                soft.assertThat(ld.getInstances(0).getTokenCount()).as("%s: layer %d all rows to one instance", g, layer)
                        .isEqualTo(promptTokens);
            }
        }
    }
}
