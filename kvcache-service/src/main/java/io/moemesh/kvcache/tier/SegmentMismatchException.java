package io.moemesh.kvcache.tier;

/**
 * The SSD directory holds an intact segment written for another model, layout or format version. Opening the tier
 * is refused rather than skipping or deleting the file: the blocks are another deployment's data and the directory
 * is misconfigured (one directory per model and layout). A state that forbids the call: FAILED_PRECONDITION.
 */
public final class SegmentMismatchException extends IllegalStateException {
    public SegmentMismatchException(String message) {
        super(message);
    }
}
