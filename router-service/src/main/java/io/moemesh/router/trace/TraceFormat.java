package io.moemesh.router.trace;

import java.util.List;

/**
 * The routing-trace formats the router reads, told apart by content: a JSON object per line, or a CSV header.
 * Each names its tokens by the columns that identify a token in the file (joined with {@code ':'} into
 * {@link TokenRoute#key()}).
 */
public enum TraceFormat {

    /**
     * Mixtral JSONL (speculative-moe's recorder): one object per (problem, token, layer) with {@code problem_id,
     * token_idx, layer, experts, gating_probs}; key {@code "<problem_id>:<token_idx>"}; no token ids (-1).
     */
    MIXTRAL_JSONL(List.of("problem_id", "token_idx")),

    /** FLAME prefill CSV: {@code token_idx,token_id,layer,e0..e<k-1>,w0..w<k-1>}; key {@code "<token_idx>"}. */
    FLAME_PREFILL_CSV(List.of("token_idx")),

    /** FLAME decode CSV: {@code seq,pos,token_id,layer,e0..,w0..}; key {@code "<seq>:<pos>"}. */
    FLAME_DECODE_CSV(List.of("seq", "pos"));

    private final List<String> keyColumns;

    TraceFormat(List<String> keyColumns) {
        this.keyColumns = keyColumns;
    }

    /** The columns (or JSON fields) whose values, joined with ':', make a token's key. */
    public List<String> keyColumns() {
        return keyColumns;
    }

    /** Whether it is a CSV format (else JSON lines). */
    public boolean csv() {
        return this != MIXTRAL_JSONL;
    }

    /** The CSV header of this format for top-{@code k} rows (CSV formats only). */
    public String csvHeader(int k) {
        if (!csv()) {
            throw new IllegalStateException(this + " has no CSV header");
        }
        StringBuilder header = new StringBuilder(String.join(",", keyColumns)).append(",token_id,layer");
        for (int i = 0; i < k; i++) {
            header.append(",e").append(i);
        }
        for (int i = 0; i < k; i++) {
            header.append(",w").append(i);
        }
        return header.toString();
    }
}
