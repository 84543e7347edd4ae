package io.moemesh.service.expert;

import io.moemesh.service.grpc.TensorArena;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * How a client shares memory with an instance on its own host ({@code unix:///} endpoint, peer-uid security): an
 * arena of {@code slots} slots of {@code slotBytes} per ExpertBatch stream ({@code io.moemesh.service.grpc.TensorArena})
 * in {@code dir}. A message whose tensor does not fit a slot, or that finds every slot taken, travels in the
 * message as on TCP; so does every message on a TCP endpoint.
 *
 * @param slots slots per stream, 0 = off (every tensor in the message)
 * @param slotBytes bytes per slot (a message and its reply share one), >= 4096 when on
 * @param dir where the arena files are made: {@code /dev/shm} where it is a writable directory (memory, not disk)
 */
public record SharedMemory(int slots, long slotBytes, Path dir) {
    /** Every tensor in the message. */
    public static final SharedMemory OFF = new SharedMemory(0, 0, Path.of("/"));
    /** The default: 16 slots of 1 MiB (a [32, 4096] float32 tensor is 512 KiB), made on first use of a stream. */
    public static final int DEFAULT_SLOTS = 16;
    public static final long DEFAULT_SLOT_BYTES = 1L << 20;

    public SharedMemory {
        if (slots < 0 || (slots > 0 && !TensorArena.validLayout(slots, slotBytes))) {
            throw new IllegalArgumentException("shared memory: " + slots + " slots of " + slotBytes + " bytes (slots >= 0; "
                    + "when on, slots of >= 4096 bytes and at most 1 GiB in all)");
        }
    }

    /** {@link #DEFAULT_SLOTS} of {@link #DEFAULT_SLOT_BYTES}, as {@link #of}. */
    public static SharedMemory defaults() {
        return of(DEFAULT_SLOTS, DEFAULT_SLOT_BYTES);
    }

    /** {@code slots} of {@code slotBytes} in /dev/shm, or in the temporary directory where there is none. */
    public static SharedMemory of(int slots, long slotBytes) {
        Path shm = Path.of("/dev/shm");
        Path dir = Files.isDirectory(shm) && Files.isWritable(shm) ? shm : Path.of(System.getProperty("java.io.tmpdir"));
        return new SharedMemory(slots, slotBytes, dir);
    }

    public boolean on() {
        return slots > 0;
    }
}
