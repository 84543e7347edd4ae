package io.moemesh.cli.bench.serve;

import java.util.OptionalInt;
import java.util.Set;

/**
 * What the server says about its model: {@code GET /v1/models} (id and, when the server reports it, the context
 * length) or gRPC {@code ModelInfo} (everything).
 */
public record ModelDescription(String name, OptionalInt maxContext, OptionalInt vocabSize, OptionalInt bosTokenId,
                               Set<Integer> eosTokenIds) {

    public ModelDescription {
        eosTokenIds = Set.copyOf(eosTokenIds);
    }
}
