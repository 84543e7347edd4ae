package io.moemesh.model.tokenizer;

/**
 * An entry of tokenizer.json's {@code added_tokens} (HF tokenizer/added_vocabulary.rs {@code AddedToken}).
 *
 * @param singleWord only matches when not inside a word
 * @param lstrip     the match swallows the whitespace on its left
 * @param rstrip     the match swallows the whitespace on its right
 * @param normalized matched in the normalized text rather than the raw input
 * @param special    skipped by {@code decode(ids, true)}
 */
record AddedToken(int id, String content, boolean singleWord, boolean lstrip, boolean rstrip, boolean normalized,
                  boolean special) {
}
