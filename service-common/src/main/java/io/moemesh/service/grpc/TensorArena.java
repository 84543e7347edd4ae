package io.moemesh.service.grpc;

import io.moemesh.proto.common.v1.DType;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayDeque;
import java.util.OptionalInt;
import java.util.regex.Pattern;

/**
 * A shared-memory arena of one same-host ExpertBatch stream: a file of fixed-size slots that the caller creates and
 * both ends map, so a tensor crosses the hop as two memory copies (float array → slot, slot → float array) instead
 * of being framed into HTTP/2 DATA frames and copied through the socket by the kernel twice per direction. The
 * gRPC message then carries only the tensor's dtype, shape and {@link Region} (moemesh.common.v1.ArenaRegion);
 * it is still the message, on the stream, that tells the other end the bytes are there, so ordering and wake-ups
 * are the transport's. The same idea as NCCL's shared-memory transport within a node and vLLM's shared-memory
 * broadcast queue, without their polling.
 *
 * <p>Layout: a 64-byte header ({@link #MAGIC}, slots, slot bytes), then {@code slots × slotBytes}. The caller
 * ({@link #create}) owns the slots' allocation ({@link #take} / {@link #give}); a slot belongs to one message and
 * its reply until the reply arrived. The receiver ({@link #open}) maps only a file that looks like one (name, owner,
 * regular file, header, size) and reads and writes only whole-slot regions ({@link #check}).
 *
 * <p>Mapped with {@link Arena#ofAuto()}: a stream that ends while a worker thread still writes its reply into a slot
 * cannot unmap the memory under it; the mapping goes when neither end's objects reach it. The caller deletes the
 * file once the receiver mapped it (or refused), so a killed process leaves nothing behind in {@code /dev/shm}.
 */
public final class TensorArena {
    /** The first 16 bytes of every arena file. */
    static final byte[] MAGIC = "moemesh-arena-v1".getBytes(StandardCharsets.US_ASCII);
    static final int HEADER_BYTES = 64;
    /** Largest arena a receiver maps: far above any sensible slots × slot size, far below memory. */
    public static final long MAX_BYTES = 1L << 30;
    /** Smallest slot: one page. */
    public static final long MIN_SLOT_BYTES = 4096;
    private static final Pattern NAME = Pattern.compile("moemesh-arena-[A-Za-z0-9_.-]+\\.shm");
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    /** A tensor's place in the arena: offset and length of its bytes, and the size of the slot it lies in. */
    public record Region(long offset, long length, long capacity) {
    }

    private final Path path;
    private final MemorySegment memory;
    private final int slots;
    private final long slotBytes;
    private final ArrayDeque<Integer> free;

    private TensorArena(Path path, MemorySegment memory, int slots, long slotBytes, boolean owner) {
        this.path = path;
        this.memory = memory;
        this.slots = slots;
        this.slotBytes = slotBytes;
        this.free = owner ? new ArrayDeque<>(slots) : null;
        if (owner) {
            for (int i = slots - 1; i >= 0; i--) {
                free.push(i);
            }
        }
    }

    /**
     * Creates an arena file in {@code dir} (owner-only permissions, as every temporary file on a POSIX file system)
     * and maps it.
     *
     * @throws IllegalArgumentException for a slot count below 1 or a slot size below 4 KiB or past {@link #MAX_BYTES}
     * @throws UncheckedIOException when the file cannot be made or mapped
     */
    public static TensorArena create(Path dir, int slots, long slotBytes) {
        if (!validLayout(slots, slotBytes)) {
            throw new IllegalArgumentException("tensor arena: " + slots + " slots of " + slotBytes + " bytes (need >= 1 slot "
                    + "of >= " + MIN_SLOT_BYTES + " bytes, at most " + MAX_BYTES + " bytes in all)");
        }
        long size = HEADER_BYTES + (long) slots * slotBytes;
        try {
            Path file = Files.createTempFile(dir, "moemesh-arena-", ".shm");
            try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
                MemorySegment m = ch.map(FileChannel.MapMode.READ_WRITE, 0, size, Arena.ofAuto());
                MemorySegment.copy(MAGIC, 0, m, ValueLayout.JAVA_BYTE, 0, MAGIC.length);
                m.set(ValueLayout.JAVA_INT_UNALIGNED, 16, slots);
                m.set(ValueLayout.JAVA_LONG_UNALIGNED, 24, slotBytes);
                return new TensorArena(file, m, slots, slotBytes, true);
            } catch (IOException | RuntimeException e) {
                Files.deleteIfExists(file);
                throw e;
            }
        } catch (IOException e) {
            throw new UncheckedIOException("tensor arena in " + dir + ": " + e.getMessage(), e);
        }
    }

    /**
     * Maps an arena a caller created, after checking that it is one: an absolute path to a regular file (not a
     * link) named {@code moemesh-arena-*.shm}, owned by this process's uid, at most {@link #MAX_BYTES}, whose header
     * says {@link #MAGIC} and a slot layout that matches its size.
     *
     * @throws IllegalArgumentException saying which check failed
     */
    public static TensorArena open(String name, int ownUid) {
        Path file;
        try {
            file = Path.of(name);
        } catch (RuntimeException e) {
            throw new IllegalArgumentException("not a path: " + e.getMessage());
        }
        if (!file.isAbsolute() || file.getFileName() == null || !NAME.matcher(file.getFileName().toString()).matches()) {
            throw new IllegalArgumentException(name + " is not an absolute path to a moemesh-arena-*.shm file");
        }
        try {
            if (!Files.isRegularFile(file, LinkOption.NOFOLLOW_LINKS)) {
                throw new IllegalArgumentException(name + " is not a regular file");
            }
            int uid = (Integer) Files.getAttribute(file, "unix:uid", LinkOption.NOFOLLOW_LINKS);
            if (uid != ownUid) {
                throw new IllegalArgumentException(name + " belongs to uid " + uid + ", not to this server's uid " + ownUid);
            }
            try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ, StandardOpenOption.WRITE,
                    LinkOption.NOFOLLOW_LINKS)) {
                long size = ch.size();
                if (size < HEADER_BYTES + MIN_SLOT_BYTES || size > MAX_BYTES) {
                    throw new IllegalArgumentException(name + " holds " + size + " bytes (an arena holds "
                            + (HEADER_BYTES + MIN_SLOT_BYTES) + ".." + MAX_BYTES + ")");
                }
                MemorySegment m = ch.map(FileChannel.MapMode.READ_WRITE, 0, size, Arena.ofAuto());
                byte[] magic = m.asSlice(0, MAGIC.length).toArray(ValueLayout.JAVA_BYTE);
                int slots = m.get(ValueLayout.JAVA_INT_UNALIGNED, 16);
                long slotBytes = m.get(ValueLayout.JAVA_LONG_UNALIGNED, 24);
                if (!java.util.Arrays.equals(magic, MAGIC)) {
                    throw new IllegalArgumentException(name + " does not start with the arena header");
                }
                if (!validLayout(slots, slotBytes) || HEADER_BYTES + (long) slots * slotBytes != size) {
                    throw new IllegalArgumentException(name + ": header says " + slots + " slots of " + slotBytes
                            + " bytes, the file holds " + size);
                }
                return new TensorArena(file, m, slots, slotBytes, false);
            }
        } catch (IOException e) {
            throw new IllegalArgumentException(name + ": " + e.getMessage());
        }
    }

    /**
     * Whether an arena may have {@code slots} slots of {@code slotBytes}: at least one slot of at least
     * {@link #MIN_SLOT_BYTES}, all of them with the header within {@link #MAX_BYTES}. Checked without multiplying,
     * so a header's slot count and size cannot overflow into a size that looks right.
     */
    public static boolean validLayout(int slots, long slotBytes) {
        return slots >= 1 && slotBytes >= MIN_SLOT_BYTES && slotBytes <= MAX_BYTES - HEADER_BYTES
                && slots <= (MAX_BYTES - HEADER_BYTES) / slotBytes;
    }

    /** The file, as named in the {@code moemesh-tensor-arena} header. */
    public Path path() {
        return path;
    }

    public int slots() {
        return slots;
    }

    public long slotBytes() {
        return slotBytes;
    }

    /** Deletes the file (both ends keep their mappings); a missing file is fine. */
    public void unlink() {
        try {
            Files.deleteIfExists(path);
        } catch (IOException e) {
            throw new UncheckedIOException("tensor arena " + path + ": " + e.getMessage(), e);
        }
    }

    /** A free slot for a message and its reply, or empty when every slot is taken (the caller sends inline). */
    public synchronized OptionalInt take() {
        return free.isEmpty() ? OptionalInt.empty() : OptionalInt.of(free.pop());
    }

    /** Gives a slot back once its reply arrived. */
    public synchronized void give(int slot) {
        if (slot < 0 || slot >= slots) {
            throw new IllegalStateException("tensor arena: slot " + slot + " of " + slots);
        }
        free.push(slot);
    }

    /** Slots taken and not given back. */
    public synchronized int slotsInUse() {
        return slots - free.size();
    }

    /** The region of slot {@code slot} holding {@code length} bytes. */
    public Region region(int slot, long length) {
        if (length > slotBytes) {
            throw new IllegalArgumentException("tensor arena: " + length + " bytes do not fit a slot of " + slotBytes);
        }
        return new Region(HEADER_BYTES + slot * slotBytes, length, slotBytes);
    }

    /** The slot a checked region lies in. */
    public int slotOf(Region r) {
        check(r);
        return (int) ((r.offset() - HEADER_BYTES) / slotBytes);
    }

    /**
     * @throws IllegalArgumentException unless {@code r} is exactly one of this arena's slots holding at most its size
     */
    public void check(Region r) {
        long rel = r.offset() - HEADER_BYTES;
        if (r.offset() < HEADER_BYTES || rel % slotBytes != 0 || rel / slotBytes >= slots) {
            throw new IllegalArgumentException("region offset " + Long.toUnsignedString(r.offset())
                    + " is not the start of a slot (" + slots + " slots of " + slotBytes + " bytes from byte " + HEADER_BYTES + ")");
        }
        if (r.capacity() != slotBytes || r.length() < 0 || r.length() > r.capacity()) {
            throw new IllegalArgumentException("region of " + Long.toUnsignedString(r.length()) + " bytes in a slot of "
                    + Long.toUnsignedString(r.capacity()) + " (this arena's slots hold " + slotBytes + ")");
        }
    }

    /** Writes {@code n} floats of {@code src} into slot {@code slot} as {@code dtype} (F32 or BF16); their region. */
    public Region write(int slot, float[] src, int n, DType dtype) {
        long bytes = (long) n * TensorCodec.elementBytes(dtype);
        Region r = region(slot, bytes);
        if (dtype == DType.DTYPE_F32) {
            MemorySegment.copy(src, 0, memory, F32, r.offset(), n);
            return r;
        }
        if (dtype != DType.DTYPE_BF16) {
            throw new IllegalArgumentException("tensor arena: dtype " + dtype + " (F32 or BF16)");
        }
        // Staged through a cache-resident chunk, as the message path converts (HopBufferPool.Chunk#bf16).
        HopBufferPool pool = HopBufferPool.shared();
        HopBufferPool.Chunk c = pool.take();
        try {
            for (int done = 0; done < n; ) {
                int k = Math.min(HopBufferPool.Chunk.BF16_PER_CHUNK, n - done);
                c.bf16(src, done, memory, r.offset() + 2L * done, k);
                done += k;
            }
        } finally {
            pool.give(c);
        }
        return r;
    }

    /**
     * The {@code n} floats a checked region holds as {@code dtype}, in an array of {@link TensorArrayPool#shared()}
     * that the caller may give back once done with it.
     *
     * @throws IllegalArgumentException when the region is not one of this arena's slots, or its length is not
     *     n × the element size
     */
    public float[] read(Region r, DType dtype, int n) {
        check(r);
        if (dtype != DType.DTYPE_F32 && dtype != DType.DTYPE_BF16) {
            throw new IllegalArgumentException("dtype " + dtype + " (F32 or BF16)");
        }
        long bytes = (long) n * TensorCodec.elementBytes(dtype);
        if (r.length() != bytes) {
            throw new IllegalArgumentException("region of " + r.length() + " bytes for " + n + " " + dtype + " elements ("
                    + bytes + " bytes)");
        }
        float[] out = TensorArrayPool.shared().take(n);
        if (dtype == DType.DTYPE_F32) {
            MemorySegment.copy(memory, F32, r.offset(), out, 0, n);
            return out;
        }
        Bf16Vectors.decode(memory, r.offset(), out, 0, n);
        return out;
    }

    @Override
    public String toString() {
        return "TensorArena[" + path + ", " + slots + " × " + slotBytes + " bytes]";
    }
}
