package io.moemesh.model.tokenizer;

/** HF's {@code SplitDelimiterBehavior} (normalizer.rs): what a split does with the delimiters it found. */
enum SplitBehavior {
    /** Delimiters are dropped. */
    REMOVED,
    /** Each delimiter is a piece of its own. */
    ISOLATED,
    /** A delimiter is glued to the piece before it. */
    MERGED_WITH_PREVIOUS,
    /** A delimiter is glued to the piece after it. */
    MERGED_WITH_NEXT,
    /** Runs of adjacent delimiters form one piece. */
    CONTIGUOUS;

    static SplitBehavior fromJson(String name) {
        return switch (name) {
            case "Removed" -> REMOVED;
            case "Isolated" -> ISOLATED;
            case "MergedWithPrevious" -> MERGED_WITH_PREVIOUS;
            case "MergedWithNext" -> MERGED_WITH_NEXT;
            case "Contiguous" -> CONTIGUOUS;
            default -> null;
        };
    }
}
