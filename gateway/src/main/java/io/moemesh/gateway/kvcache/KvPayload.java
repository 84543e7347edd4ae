package io.moemesh.gateway.kvcache;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;

/**
 * The boundary between the gateway's paged pool and kvcache.v1's block payload. The pool keeps a block's keys (and
 * values) of one layer token-major, {@code [blockTokens][kvHeads][headDim]} (docs/engine.md, "KvCache: layout
 * contract"); the wire carries, per layer ascending, K then V, each {@code [kvHeads][blockTokens][headDim]},
 * float32 little-endian (kvcache.proto's file comment). So each layer's K and V are transposed over their first two
 * axes here, in both directions; the floats are moved bit for bit.
 *
 * @param layers      decoder layers
 * @param kvHeads     key/value heads per layer
 * @param blockTokens positions per block
 * @param headDim     dimensions per head
 */
public record KvPayload(int layers, int kvHeads, int blockTokens, int headDim) {
    public KvPayload {
        if (layers < 1 || kvHeads < 1 || blockTokens < 1 || headDim < 1) {
            throw new IllegalArgumentException("a KV block layout needs positive layers, kv heads, block tokens and "
                    + "head dim, got " + layers + ", " + kvHeads + ", " + blockTokens + ", " + headDim);
        }
    }

    /** Floats of one layer's keys (or values) of one block. */
    public int floatsPerLayer() {
        return kvHeads * blockTokens * headDim;
    }

    /** Bytes of one block's payload: 2 · layers · kvHeads · blockTokens · headDim · 4. */
    public int bytes() {
        return 2 * layers * floatsPerLayer() * Float.BYTES;
    }

    /** The wire payload of a block whose per-layer keys and values are token-major. */
    public byte[] encode(float[][] keys, float[][] values) {
        check(keys, values);
        ByteBuffer out = ByteBuffer.allocate(bytes()).order(ByteOrder.LITTLE_ENDIAN);
        FloatBuffer f = out.asFloatBuffer();
        for (int l = 0; l < layers; l++) {
            headMajor(keys[l], f);
            headMajor(values[l], f);
        }
        return out.array();
    }

    /** Per layer, token-major keys ([0]) and values ([1]) of a wire payload of exactly {@link #bytes()} bytes. */
    public float[][][] decode(byte[] payload) {
        if (payload.length != bytes()) {
            throw new IllegalArgumentException("a block payload has " + bytes() + " bytes for this model and block "
                    + "size, got " + payload.length);
        }
        FloatBuffer f = ByteBuffer.wrap(payload).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer();
        float[][] keys = new float[layers][];
        float[][] values = new float[layers][];
        for (int l = 0; l < layers; l++) {
            keys[l] = tokenMajor(f);
            values[l] = tokenMajor(f);
        }
        return new float[][][] {keys, values};
    }

    private void headMajor(float[] tokenMajor, FloatBuffer out) {
        for (int h = 0; h < kvHeads; h++) {
            for (int t = 0; t < blockTokens; t++) {
                out.put(tokenMajor, (t * kvHeads + h) * headDim, headDim);
            }
        }
    }

    private float[] tokenMajor(FloatBuffer in) {
        float[] out = new float[floatsPerLayer()];
        for (int h = 0; h < kvHeads; h++) {
            for (int t = 0; t < blockTokens; t++) {
                in.get(out, (t * kvHeads + h) * headDim, headDim);
            }
        }
        return out;
    }

    private void check(float[][] keys, float[][] values) {
        if (keys.length != layers || values.length != layers) {
            throw new IllegalArgumentException("a block has " + layers + " layers, got " + keys.length + " of keys and "
                    + values.length + " of values");
        }
        for (int l = 0; l < layers; l++) {
            if (keys[l].length != floatsPerLayer() || values[l].length != floatsPerLayer()) {
                throw new IllegalArgumentException("layer " + l + " of a block has " + floatsPerLayer() + " floats of "
                        + "keys and of values, got " + keys[l].length + " and " + values[l].length);
            }
        }
    }
}
