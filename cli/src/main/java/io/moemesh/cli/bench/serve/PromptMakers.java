package io.moemesh.cli.bench.serve;

import io.moemesh.model.config.ModelConfigReader;
import io.moemesh.model.tokenizer.Tokenizer;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.OptionalInt;
import java.util.Set;

/** Picks how prompts are built: the model's tokenizer when given, else random ids (gRPC), else words (estimated). */
final class PromptMakers {
    private PromptMakers() {
    }

    static PromptMaker choose(StreamingBackend server, ModelDescription info, String model, Path tokenizerDir,
                              boolean needIds, PrintWriter err) {
        boolean grpc = server instanceof GrpcBackend;
        if (tokenizerDir != null) {
            Path file = tokenizerDir.resolve("tokenizer.json");
            if (!Files.isRegularFile(file)) {
                throw new IllegalArgumentException("--tokenizer " + tokenizerDir + ": no tokenizer.json");
            }
            OptionalInt bos = ModelConfigReader.read(tokenizerDir).bosTokenId()
                    .map(OptionalInt::of).orElse(OptionalInt.empty());
            return new TokenizerPromptMaker(Tokenizer.load(file), bos, grpc || needIds);
        }
        if (grpc) {
            Set<Integer> special = new HashSet<>(info.eosTokenIds());
            info.bosTokenId().ifPresent(special::add);
            GrpcBackend g = (GrpcBackend) server;
            return new RandomIdPromptMaker(info.vocabSize().orElseThrow(), special, info.bosTokenId(),
                    text -> g.tokenize(model, text));
        }
        err.println("moemesh bench serve: no --tokenizer: prompt lengths and clipping are estimated (1 word = 1 "
                + "token); token counts in the results come from the server's usage");
        return new WordPromptMaker();
    }
}
