package io.moemesh.router.reports;

import io.moemesh.router.prediction.ModelShape;
import io.moemesh.router.trace.TokenRoute;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import tools.jackson.core.JacksonException;
import tools.jackson.databind.json.JsonMapper;

/**
 * The route book's statistics on disk ({@code <state-dir>/router/routes.json}): the window's tokens, the ingested
 * count and the online recall counters. The predictor is not serialised: a restore re-learns it from the window,
 * which is what it had learned recently (older history is forgotten, as the window forgets it).
 */
public final class RouteBookSnapshots {
    /** The file under the router's state folder. */
    public static final String FILE = "routes.json";
    private static final JsonMapper JSON = JsonMapper.builder().build();

    /** The JSON form; {@code version} 1. */
    record Snapshot(int version, int layers, int experts, int topK, long ingested, long truths, long hitsK,
                    long hits2K, List<Token> tokens) {
    }

    record Token(String key, int tokenId, int[][] experts, float[][] weights) {
    }

    private RouteBookSnapshots() {
    }

    /** Writes {@code book}'s statistics to {@code dir}/{@value #FILE} atomically. */
    public static void write(Path dir, RouteBook book) {
        List<Token> tokens = book.windowTrace().tokens().stream()
                .map(t -> new Token(t.key(), t.tokenId(), t.experts(), t.weights())).toList();
        OnlineRecall r = book.recall();
        ModelShape s = book.shape();
        Snapshot snap = new Snapshot(1, s.layers(), s.experts(), s.topK(), book.ingested(), r.truths(), r.hitsK(),
                r.hits2K(), tokens);
        AtomicFiles.write(dir.resolve(FILE), JSON.writeValueAsString(snap));
    }

    /**
     * Restores {@code dir}/{@value #FILE} into a fresh {@code book}; nothing when there is no file.
     *
     * @return whether a snapshot was restored
     * @throws IllegalArgumentException when the file is not a snapshot of a model of the book's shape
     */
    public static boolean restore(Path dir, RouteBook book) {
        Path file = dir.resolve(FILE);
        if (!Files.isRegularFile(file)) {
            return false;
        }
        Snapshot snap;
        try {
            snap = JSON.readValue(Files.readString(file, StandardCharsets.UTF_8), Snapshot.class);
        } catch (IOException e) {
            throw new UncheckedIOException(file + ": cannot read the route snapshot", e);
        } catch (JacksonException e) {
            throw new IllegalArgumentException(file + ": not a route snapshot (" + e.getOriginalMessage() + ")", e);
        }
        ModelShape s = book.shape();
        if (snap.version() != 1 || snap.layers() != s.layers() || snap.experts() != s.experts()
                || snap.topK() != s.topK()) {
            throw new IllegalArgumentException(file + ": a snapshot of a model with " + snap.layers() + " layers, "
                    + snap.experts() + " experts, top-k " + snap.topK() + " (version " + snap.version()
                    + "); this router serves " + s.layers() + " layers, " + s.experts() + " experts, top-k " + s.topK()
                    + ": move the file away to start afresh");
        }
        List<TokenRoute> tokens = (snap.tokens() == null ? List.<Token>of() : snap.tokens()).stream()
                .map(t -> new TokenRoute(t.key(), t.tokenId(), t.experts(), t.weights())).toList();
        book.restore(tokens, snap.ingested(), new OnlineRecall(snap.truths(), snap.hitsK(), snap.hits2K()));
        return true;
    }
}
