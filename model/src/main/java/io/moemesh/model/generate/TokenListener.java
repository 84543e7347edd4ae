package io.moemesh.model.generate;

/** Receives tokens as they are sampled (streaming). */
@FunctionalInterface
public interface TokenListener {
    TokenListener NONE = (request, token) -> { };

    /** @param request index of the request in the batch given to the generator */
    void onToken(int request, int token);
}
