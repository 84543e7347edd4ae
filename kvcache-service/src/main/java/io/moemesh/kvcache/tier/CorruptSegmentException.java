package io.moemesh.kvcache.tier;

/** A segment file whose header is not intact: it is quarantined (renamed {@code *.corrupt}) at open. */
final class CorruptSegmentException extends RuntimeException {
    CorruptSegmentException(String message) {
        super(message);
    }
}
