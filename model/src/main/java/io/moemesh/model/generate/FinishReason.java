package io.moemesh.model.generate;

/** Why a sequence stopped. */
public enum FinishReason {
    /** An EOS token was generated (it is part of the output ids). */
    STOP,
    /** max_tokens reached, or the model's maximum context. */
    LENGTH
}
