package io.moemesh.model.generate;

/**
 * Receives one sequence's progress from the {@link StepScheduler}, on the scheduler's thread: keep it cheap
 * (hand off to an executor or a stream's own buffering).
 */
public interface SequenceListener {

    /**
     * The sequence was admitted for the first time (its prefill starts this step): {@code cachedPromptTokens}
     * leading prompt positions came from the prefix cache and are not computed (0 without a hit).
     */
    default void onAdmitted(int cachedPromptTokens) {
    }

    /** The prompt is in the KV cache; called on the engine thread right after that step, before sampling. */
    default void onPrefillComplete() {
    }

    /** When the request asked for logprobs: called just before {@link #onToken} with the same token. */
    default void onLogprobs(TokenLogprobs logprobs) {
    }

    void onToken(int token);

    /** Exactly one of onFinish / onError ends every sequence. */
    void onFinish(GenerationResult result);

    void onError(Throwable error);
}
