package io.moemesh.kvcache.tier;

import java.nio.file.Path;

/**
 * A stored record's place in a segment file, as {@link SsdTier#locate} answers it for a same-host reader.
 *
 * @param path     the segment file (absolute)
 * @param offset   the record's first byte in it
 * @param length   the record's bytes (header and payload)
 * @param crc      its CRC32C (the value its header holds)
 * @param encoding its payload's encoding
 */
public record RecordExtent(Path path, long offset, int length, int crc, PayloadEncoding encoding) {
}
