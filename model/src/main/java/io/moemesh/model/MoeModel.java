package io.moemesh.model;

import io.moemesh.model.config.ModelConfig;
import io.moemesh.model.config.ModelConfigReader;
import io.moemesh.model.engine.DenseWeights;
import io.moemesh.model.engine.Engine;
import io.moemesh.model.engine.ExpertDispatch;
import io.moemesh.model.engine.ExpertWeights;
import io.moemesh.model.engine.LookaheadObserver;
import io.moemesh.model.engine.RouteObserver;
import io.moemesh.model.engine.LocalExperts;
import io.moemesh.model.engine.PagedKvCache;
import io.moemesh.model.safetensors.TensorStore;
import io.moemesh.model.tokenizer.PromptBos;
import io.moemesh.model.tokenizer.Tokenizer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Optional;

/**
 * A Hugging Face model directory opened for inference: config, tokenizer, memory-mapped weights. Builds
 * engines whose experts run in-process ({@link #localEngine()}) or wherever an {@link ExpertDispatch} sends them.
 */
public final class MoeModel implements AutoCloseable {
    private final Path dir;
    private final ModelConfig config;
    private final Tokenizer tokenizer;
    private final TensorStore store;
    private final DenseWeights dense;
    /** The token a prompt starts with ({@link PromptBos}); empty when none. */
    private final Optional<Integer> promptBos;

    private MoeModel(Path dir, ModelConfig config, Tokenizer tokenizer, TensorStore store, DenseWeights dense) {
        this.promptBos = PromptBos.of(dir, tokenizer, config.bosTokenId());
        this.dir = dir;
        this.config = config;
        this.tokenizer = tokenizer;
        this.store = store;
        this.dense = dense;
    }

    /**
     * Opens {@code dir}; every problem is a {@link ModelFormatException} naming the file and what is wrong. Every
     * tensor is checked here, the experts' too ({@link ExpertWeights#checkAll}: headers only, no data read).
     */
    public static MoeModel open(Path dir) {
        if (!Files.isDirectory(dir)) {
            throw new ModelFormatException(dir + ": model directory not found");
        }
        ModelConfig config = ModelConfigReader.read(dir);
        Tokenizer tokenizer = Tokenizer.load(dir.resolve("tokenizer.json"));
        if (tokenizer.vocabSize() > config.vocabSize()) {
            throw new ModelFormatException(dir.resolve("tokenizer.json") + ": " + tokenizer.vocabSize()
                    + " token ids do not fit vocab_size " + config.vocabSize() + " of config.json");
        }
        TensorStore store = TensorStore.open(dir);
        try {
            DenseWeights dense = DenseWeights.load(store, config);
            // The in-process experts make their views on first use; a missing one would otherwise surface in the
            // step that first routes to it, failing all of that step's requests. Every shard is mapped and its
            // header read (ModelFingerprint reads them all at the gateway's start anyway); no page of tensor data
            // is touched.
            ExpertWeights.checkAll(store, config);
            return new MoeModel(dir, config, tokenizer, store, dense);
        } catch (RuntimeException e) {
            store.close();
            throw e;
        }
    }

    public Path directory() {
        return dir;
    }

    public ModelConfig config() {
        return config;
    }

    public Tokenizer tokenizer() {
        return tokenizer;
    }

    public TensorStore tensors() {
        return store;
    }

    public DenseWeights denseWeights() {
        return dense;
    }

    /**
     * The prompt's ids with the BOS rule: prepend the tokenizer's BOS ({@link PromptBos}: as transformers'
     * tokenizer(text) adds it, not config.json's bos_token_id alone) when there is one and it is not already first.
     */
    public int[] encodePrompt(String text) {
        return withBos(tokenizer.encode(text));
    }

    public int[] withBos(int[] ids) {
        return promptBos.isEmpty() ? ids : withBos(ids, promptBos.get());
    }

    /** The BOS the tokenizer adds to a prompt ({@link PromptBos}); empty when it adds none. */
    public Optional<Integer> promptBos() {
        return promptBos;
    }

    /** {@code ids} starting with {@code bos}: prepended unless they already start with it. */
    public static int[] withBos(int[] ids, int bos) {
        if (ids.length > 0 && ids[0] == bos) {
            return ids;
        }
        int[] out = new int[ids.length + 1];
        out[0] = bos;
        System.arraycopy(ids, 0, out, 1, ids.length);
        return out;
    }

    /** An engine computing every expert in this process: the monolithic reference. */
    public Engine localEngine() {
        return new Engine(config, dense, LocalExperts.fromStore(store, config));
    }

    public Engine engine(ExpertDispatch experts) {
        return new Engine(config, dense, experts);
    }

    /** With an observer that sees the gate's choice for every row at every MoE layer. */
    public Engine engine(ExpertDispatch experts, RouteObserver routes) {
        return new Engine(config, dense, experts, routes);
    }

    /** With a route observer and a lookahead observer (the next layer's experts predicted one layer early). */
    public Engine engine(ExpertDispatch experts, RouteObserver routes, LookaheadObserver lookahead) {
        return new Engine(config, dense, experts, routes, lookahead);
    }

    /** A KV cache for {@code tokens} positions in total over all sequences. */
    public PagedKvCache newCache(int tokens) {
        return PagedKvCache.forTokens(config.numLayers(), config.kvDim(), tokens);
    }

    @Override
    public void close() {
        store.close();
    }
}
