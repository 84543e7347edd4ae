package io.moemesh.model.kv;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class BlockHashTest {
    /** Fingerprint bytes 0x00 .. 0x1f. */
    private static final ModelFingerprint FP = ModelFingerprint.of(bytes(0));
    private static final int[] ONE_TO_SIXTEEN = IntStream.rangeClosed(1, 16).toArray();

    private static byte[] bytes(int first) {
        byte[] b = new byte[32];
        for (int i = 0; i < 32; i++) {
            b[i] = (byte) (first + i);
        }
        return b;
    }

    /*
     * The golden vectors, computed once with Python from the layout in BlockHash's javadoc:
     *   import hashlib, struct
     *   fp = bytes(range(32))
     *   def h(parent, toks, salt):
     *       s = salt.encode("utf-8")
     *       return hashlib.sha256(parent + b"".join(struct.pack("<i", t) for t in toks)
     *           + struct.pack("<I", len(fp)) + fp + struct.pack("<I", len(s)) + s).hexdigest()
     *   b0 = h(bytes(32), list(range(1, 17)), "alice")
     *   h(bytes.fromhex(b0), [70000 + i for i in range(16)], "alice")
     *   h(bytes(32), list(range(1, 17)), "");  h(bytes(32), list(range(1, 17)), "zoë")
     */
    @Test
    void goldenVectors_matchTheDocumentedLayout_computedIndependently() {
        BlockHash b0 = BlockHash.of(null, ONE_TO_SIXTEEN, 0, 16, FP, "alice");
        assertThat(b0.hex()).isEqualTo("8d95bd38c6d654f5bdc596f7a8276064f724df63303e311501d3364b19abe0df");
        int[] second = IntStream.range(70000, 70016).toArray();
        assertThat(BlockHash.of(b0, second, 0, 16, FP, "alice").hex())
                .isEqualTo("29cdf4819fb07c6c7a1d88a377fff253171dd3d017da4418ff9f353c5d1c009e");
        assertThat(BlockHash.of(null, ONE_TO_SIXTEEN, 0, 16, FP, "").hex())
                .isEqualTo("950ce959d1fa1c2e2c8e009a286e0a5ccadb87502e70af4b27c2da98007be718");
        assertThat(BlockHash.of(null, ONE_TO_SIXTEEN, 0, 16, FP, "zoë").hex())
                .isEqualTo("2ae2f5c6e2f3c76a230c46e6698a20a9ef47bd36ef4ea257f26abf12b8083a48");
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource({"parent", "one token", "token order", "fingerprint", "tenant", "offset of the block in the array"})
    void changingAnyInput_changesTheHash(String what) {
        BlockHash parent = BlockHash.of(null, new int[] {9, 9, 9, 9}, 0, 4, FP, "t");
        int[] tokens = {1, 2, 3, 4, 5};
        BlockHash base = BlockHash.of(parent, tokens, 0, 4, FP, "t");
        BlockHash changed = switch (what) {
            case "parent" -> BlockHash.of(null, tokens, 0, 4, FP, "t");
            case "one token" -> BlockHash.of(parent, new int[] {1, 2, 3, 6}, 0, 4, FP, "t");
            case "token order" -> BlockHash.of(parent, new int[] {2, 1, 3, 4}, 0, 4, FP, "t");
            case "fingerprint" -> BlockHash.of(parent, tokens, 0, 4, ModelFingerprint.of(bytes(1)), "t");
            case "tenant" -> BlockHash.of(parent, tokens, 0, 4, FP, "u");
            default -> BlockHash.of(parent, tokens, 1, 4, FP, "t");
        };
        assertThat(changed).isNotEqualTo(base);
        assertThat(BlockHash.of(parent, tokens.clone(), 0, 4, FP, "t")).isEqualTo(base).hasSameHashCodeAs(base);
    }

    @Test
    void fromBytes_roundTrips_andRefusesAnotherLength() {
        BlockHash h = BlockHash.of(null, ONE_TO_SIXTEEN, 0, 16, FP, "");
        assertThat(BlockHash.fromBytes(h.bytes())).isEqualTo(h);
        assertThatThrownBy(() -> BlockHash.fromBytes(new byte[31])).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("32 bytes, got 31");
        assertThatThrownBy(() -> BlockHash.of(null, ONE_TO_SIXTEEN, 8, 16, FP, ""))
                .isInstanceOf(IllegalArgumentException.class);
    }
}
