package io.moemesh.model.generate;

import io.moemesh.model.engine.Engine;
import io.moemesh.model.engine.KvCache;
import java.util.ArrayList;
import java.util.List;

/**
 * Runs a fixed set of requests to completion on a {@link StepScheduler} (the CLI and benchmarks); the gateway
 * drives the same scheduler continuously from its engine thread.
 */
public final class Generator {
    private final Engine engine;
    private final KvCache cache;
    private final int stepTokenBudget;

    public Generator(Engine engine, KvCache cache, int stepTokenBudget) {
        if (stepTokenBudget < 1) {
            throw new IllegalArgumentException("step token budget must be ≥ 1");
        }
        this.engine = engine;
        this.cache = cache;
        this.stepTokenBudget = stepTokenBudget;
    }

    public List<GenerationResult> generate(List<GenerationRequest> requests, TokenListener listener) {
        StepScheduler scheduler = new StepScheduler(engine, cache, stepTokenBudget, Math.max(1, requests.size()));
        GenerationResult[] results = new GenerationResult[requests.size()];
        RuntimeException[] failure = new RuntimeException[1];
        for (int i = 0; i < requests.size(); i++) {
            int index = i;
            scheduler.submit(requests.get(i), new SequenceListener() {
                @Override
                public void onToken(int token) {
                    listener.onToken(index, token);
                }

                @Override
                public void onFinish(GenerationResult result) {
                    results[index] = result;
                }

                @Override
                public void onError(Throwable error) {
                    failure[0] = error instanceof RuntimeException r ? r : new IllegalStateException(error);
                }
            });
        }
        while (!scheduler.idle()) {
            if (!scheduler.step() && !scheduler.idle()) {
                throw new IllegalStateException("the KV cache cannot hold the next step of any waiting request");
            }
            if (failure[0] != null) {
                throw failure[0];
            }
        }
        return new ArrayList<>(List.of(results));
    }
}
