package io.moemesh.kvcache.block;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;

/**
 * One stored block: its key, its layout and K/V of every layer as float32 little-endian bytes in
 * {@link KvLayout}'s order. Immutable: the bytes are held as a read-only buffer that nobody else can write (the
 * factories copy, or take ownership of a buffer the caller promises not to touch), so a block handed out by a
 * tier can be shared by any number of readers without copying: the SSD path reads a record into one buffer,
 * checks its CRC32C and wraps it here.
 */
public final class KvBlock {
    private final BlockKey key;
    private final KvLayout layout;
    private final ByteBuffer data;
    /** The bytes' heap array when they have one (the buffer the block owns), else null: {@link #arrayView}. */
    private final byte[] array;
    private final int arrayOffset;

    private KvBlock(BlockKey key, KvLayout layout, ByteBuffer owned) {
        this.key = key;
        this.layout = layout;
        this.data = owned.asReadOnlyBuffer().order(ByteOrder.LITTLE_ENDIAN);
        this.array = owned.hasArray() ? owned.array() : null;
        this.arrayOffset = owned.hasArray() ? owned.arrayOffset() + owned.position() : 0;
    }

    /**
     * A block from floats in {@link KvLayout}'s order (copied).
     *
     * @throws IllegalArgumentException naming the expected and actual float counts when they differ
     */
    public static KvBlock of(BlockKey key, KvLayout layout, float[] floats) {
        requireNonNull(key, layout);
        if (floats.length != layout.floatsPerBlock()) {
            throw new IllegalArgumentException("block " + key + ": " + layout + " needs " + layout.floatsPerBlock()
                    + " floats (" + layout.bytesPerBlock() + " bytes), got " + floats.length);
        }
        ByteBuffer b = ByteBuffer.allocate(layout.bytesPerBlock()).order(ByteOrder.LITTLE_ENDIAN);
        b.asFloatBuffer().put(floats);
        return new KvBlock(key, layout, b);
    }

    /**
     * A block over float32 little-endian bytes from the buffer's position to its limit (copied).
     *
     * @throws IllegalArgumentException naming the expected and actual byte counts when they differ
     */
    public static KvBlock copyOf(BlockKey key, KvLayout layout, ByteBuffer bytes) {
        requireNonNull(key, layout);
        checkSize(key, layout, bytes.remaining());
        ByteBuffer b = ByteBuffer.allocate(bytes.remaining());
        b.put(bytes.duplicate()).flip();
        return new KvBlock(key, layout, b);
    }

    /**
     * A block that takes ownership of {@code bytes} (position to limit) without copying: the caller must never
     * write the buffer again. For tiers that just read the bytes from a file.
     */
    public static KvBlock wrapOwned(BlockKey key, KvLayout layout, ByteBuffer bytes) {
        requireNonNull(key, layout);
        checkSize(key, layout, bytes.remaining());
        return new KvBlock(key, layout, bytes.slice());
    }

    private static void requireNonNull(BlockKey key, KvLayout layout) {
        if (key == null || layout == null) {
            throw new IllegalArgumentException("a block needs a key and a layout");
        }
    }

    private static void checkSize(BlockKey key, KvLayout layout, int bytes) {
        if (bytes != layout.bytesPerBlock()) {
            throw new IllegalArgumentException("block " + key + ": " + layout + " needs " + layout.bytesPerBlock()
                    + " bytes, got " + bytes);
        }
    }

    public BlockKey key() {
        return key;
    }

    public KvLayout layout() {
        return layout;
    }

    /** Bytes of the block (its layout's float32 size). */
    public int sizeBytes() {
        return data.capacity();
    }

    /** The bytes, read-only, little-endian, position 0 (a new view each call: no shared position). */
    public ByteBuffer data() {
        return data.duplicate().order(ByteOrder.LITTLE_ENDIAN);
    }

    /**
     * The bytes for a writer that only copies them out, e.g. the Get reply marshaller, which hands a heap array to
     * gRPC's framer in one {@code write} (a read-only buffer hides its array, so the marshaller would have to copy
     * it through a scratch array first: one more pass over every byte restored). A view with an accessible array,
     * position 0, when the block is on the heap; else {@link #data()}. Nobody may write through it: the block is
     * shared by every reader and must stay the bytes whose CRC32C was checked.
     */
    public ByteBuffer arrayView() {
        return array == null ? data() : ByteBuffer.wrap(array, arrayOffset, data.capacity()).slice()
                .order(ByteOrder.LITTLE_ENDIAN);
    }

    /** The floats, read-only, in {@link KvLayout}'s order (a view, no copy). */
    public FloatBuffer floats() {
        return data().asFloatBuffer();
    }

    /** One layer's K (value false) or V (value true): [kvHeads][blockTokens][headDim], a read-only view. */
    public FloatBuffer tensor(int layer, boolean value) {
        if (layer < 0 || layer >= layout.layers()) {
            throw new IllegalArgumentException("layer must be in [0, " + layout.layers() + "), got " + layer);
        }
        FloatBuffer all = floats();
        int from = layout.tensorOffset(layer, value);
        return all.slice(from, layout.floatsPerTensor());
    }

    /** A copy of all floats. */
    public float[] toFloats() {
        float[] out = new float[layout.floatsPerBlock()];
        floats().get(out);
        return out;
    }

    /** True when the other block has the same key, layout and bytes. */
    public boolean sameContent(KvBlock other) {
        return key.equals(other.key) && layout.equals(other.layout) && data().equals(other.data());
    }

    @Override
    public String toString() {
        return "KvBlock[" + key + ", " + data.capacity() + " bytes]";
    }
}
