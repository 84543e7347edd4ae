package io.moemesh.cli;

import io.moemesh.model.synth.SynthArch;
import io.moemesh.model.synth.SynthSpec;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * How big the checkpoint of a spec is, computed from its sizes alone (the shapes SynthLayout gives each tensor, in
 * exact arithmetic) before anything is listed or written: {@code synth} refuses sizes whose checkpoint would overflow
 * a long, list more tensors than a safetensors header may hold, or not fit on the output's file system, instead of
 * failing in the middle (an ArithmeticException, an OutOfMemoryError of the tensor list, a full disk).
 *
 * @param tensors   the tensors of model.safetensors
 * @param dataBytes their data, bytes (the header not included)
 */
record SynthSize(long tensors, long dataBytes) {
    /** The longest safetensors header the readers accept (ours: SafetensorsFile; the safetensors library: 100 MB). */
    static final long MAX_HEADER_BYTES = 100L * 1024 * 1024;
    /**
     * The fewest header bytes one tensor takes: its name (at least 17 characters) and
     * {@code {"dtype":"F32","shape":[1],"data_offsets":[0,1]}}; more tensors than the limit over this cannot load.
     */
    static final long MIN_HEADER_BYTES_PER_TENSOR = 64;
    /** The most header bytes one tensor takes: the longest name and two 20-digit shapes and offsets fit. */
    static final long MAX_HEADER_BYTES_PER_TENSOR = 256;
    /** tokenizer.json, config.json, generation_config.json, README.md, with room to spare. */
    static final long OTHER_FILES_BYTES = 1L << 20;

    /** @throws ArithmeticException when the data's size overflows a long */
    static SynthSize of(SynthSpec s) {
        long hidden = s.hidden();
        long q = Math.multiplyExact((long) s.heads(), s.effectiveHeadDim());
        long kv = Math.multiplyExact((long) s.kvHeads(), s.effectiveHeadDim());
        long inter = s.intermediate();
        // per layer: two norms, q/k/v/o, the router gate, the routed experts (three hidden x intermediate each)
        long layerTensors = 7 + Math.multiplyExact(3L, s.experts());
        long layer = Math.addExact(Math.multiplyExact(2L, hidden),
                Math.multiplyExact(Math.addExact(Math.multiplyExact(2L, q), Math.multiplyExact(2L, kv)), hidden));
        layer = Math.addExact(layer, Math.multiplyExact((long) s.experts(), hidden));
        layer = Math.addExact(layer, Math.multiplyExact(s.experts(), Math.multiplyExact(3L, Math.multiplyExact(inter,
                hidden))));
        if (s.arch() == SynthArch.QWEN2_MOE) {
            // q/k/v biases; the shared expert and its gate
            layerTensors += 3 + 4;
            layer = Math.addExact(layer, Math.addExact(q, Math.multiplyExact(2L, kv)));
            layer = Math.addExact(layer, Math.addExact(Math.multiplyExact(3L, Math.multiplyExact(
                    (long) s.sharedExpertIntermediate(), hidden)), hidden));
        }
        if (s.arch() == SynthArch.OLMOE) {
            layerTensors += 2; // q_norm, k_norm
            layer = Math.addExact(layer, Math.addExact(q, kv));
        }
        // embeddings and lm_head (vocab x hidden each), the final norm
        long elements = Math.addExact(Math.multiplyExact(s.layers(), layer),
                Math.addExact(Math.multiplyExact(2L, Math.multiplyExact((long) s.vocab(), hidden)), hidden));
        long tensors = Math.addExact(Math.multiplyExact(s.layers(), layerTensors), 3);
        return new SynthSize(tensors, Math.multiplyExact(elements, s.dtype().tensorDtype().bytes()));
    }

    /** Whether a safetensors header listing this many tensors would pass the readers' limit (it could not). */
    boolean headerTooLong() {
        return tensors > MAX_HEADER_BYTES / MIN_HEADER_BYTES_PER_TENSOR;
    }

    /** Bytes on disk at most: data, header, the other files; also the {@code .partial} while it is written. */
    long diskBytes() {
        return Math.addExact(Math.addExact(dataBytes, Math.multiplyExact(tensors, MAX_HEADER_BYTES_PER_TENSOR)),
                OTHER_FILES_BYTES);
    }

    /**
     * The size option that makes a checkpoint too large: the largest value among them (a spec overflows because one of
     * its sizes is absurd), as {@code --hidden 2000000000}.
     */
    static String largestOption(SynthSpec s) {
        Map<String, Long> options = new LinkedHashMap<>();
        options.put("--hidden", (long) s.hidden());
        options.put("--intermediate", (long) s.intermediate());
        options.put("--experts", (long) s.experts());
        options.put("--layers", (long) s.layers());
        options.put("--vocab", (long) s.vocab());
        options.put("--heads", (long) s.heads());
        options.put("--kv-heads", (long) s.kvHeads());
        s.headDim().ifPresent(d -> options.put("--head-dim", (long) d));
        s.sharedIntermediate().ifPresent(d -> options.put("--shared-intermediate", (long) d));
        Map.Entry<String, Long> max = options.entrySet().stream().max(Map.Entry.comparingByValue()).orElseThrow();
        return max.getKey() + " " + max.getValue();
    }
}
