package io.moemesh.router.grpc;

import static io.moemesh.router.grpc.RouterStreamsSocketTest.assertInvalidArgument;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowable;

import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.InsecureServerCredentials;
import io.grpc.ManagedChannel;
import io.grpc.Server;
import io.moemesh.proto.router.v1.Instance;
import io.moemesh.proto.router.v1.LayerRoute;
import io.moemesh.proto.router.v1.PredictPathsRequest;
import io.moemesh.proto.router.v1.PredictPathsResponse;
import io.moemesh.proto.router.v1.RouterServiceGrpc;
import io.moemesh.proto.router.v1.SequenceQuery;
import io.moemesh.proto.router.v1.TokenRoute;
import io.moemesh.router.coordination.EpochStore;
import io.moemesh.router.coordination.PlacementCoordinator;
import io.moemesh.router.coordination.WatcherRegistry;
import io.moemesh.router.placement.PlacementBudget;
import io.moemesh.router.reports.RouteBook;
import io.moemesh.router.support.TestRoutes;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * PredictPaths' bounds on what one call may make the router hold (request ids, observed routes), against
 * RouterGrpcService on a real server over a real socket (plaintext: PredictPaths does not look at the caller's
 * identity), for the tests' tiny model (4 layers, 8 experts, top-2).
 */
class PredictPathsSocketTest {
    static final List<Instance> INSTANCES = List.of(RouterStreamsSocketTest.instance("expert-0"),
            RouterStreamsSocketTest.instance("expert-1"));

    @TempDir
    Path stateDir;
    final RouteBook book = TestRoutes.book(100);
    final ExecutorService waits = Executors.newSingleThreadExecutor();
    PlacementCoordinator coordinator;
    Server server;
    ManagedChannel channel;
    RouterServiceGrpc.RouterServiceBlockingStub stub;

    @BeforeEach
    void start() throws Exception {
        var settings = new PlacementCoordinator.Settings(INSTANCES, TestRoutes.SHAPE, false, 1,
                PlacementBudget.slots(4, 8), "affinity", 1_000_000, Duration.ofSeconds(30));
        coordinator = new PlacementCoordinator(settings, book, new RouterStreamsSocketTest.LoadingInstances(),
                new EpochStore(stateDir), Executors.newSingleThreadExecutor(), Executors.newFixedThreadPool(2),
                System::nanoTime);
        coordinator.start().join();
        RouterGrpcService service = new RouterGrpcService(book, coordinator, new WatcherRegistry(), waits, () -> { },
                OperatorPolicy.unauthenticated());
        server = Grpc.newServerBuilderForPort(0, InsecureServerCredentials.create()).addService(service).build()
                .start();
        channel = Grpc.newChannelBuilderForAddress("localhost", server.getPort(), InsecureChannelCredentials.create())
                .build();
        stub = RouterServiceGrpc.newBlockingStub(channel).withDeadlineAfter(1, TimeUnit.MINUTES);
    }

    @AfterEach
    void stop() throws InterruptedException {
        channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
        server.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
        coordinator.close();
        waits.shutdownNow();
    }

    /** A query for one token at position {@code observed}, after {@code observed} routes at positions 0.. (layer 0). */
    static SequenceQuery query(String requestId, int observed) {
        SequenceQuery.Builder q = SequenceQuery.newBuilder().setRequestId(requestId).addTokenIds(5)
                .setFirstPosition(observed);
        for (int p = 0; p < observed; p++) {
            q.addObserved(route(p));
        }
        return q.build();
    }

    /** A route at {@code position}, its layer 0 only. */
    static TokenRoute route(int position) {
        return TokenRoute.newBuilder().setPosition(position).setTokenId(5).addLayers(LayerRoute.newBuilder().setLayer(0)
                .addExperts(position % 8).addExperts((position + 1) % 8)).build();
    }

    /** The answer, or the error that refused the call. */
    Object call(PredictPathsRequest.Builder req) {
        Object[] answer = new Object[1];
        Throwable refused = catchThrowable(() -> answer[0] = stub.predictPaths(req.build()));
        return refused != null ? refused : answer[0];
    }

    @Test
    void predictPaths_requestIdOverTheReportedIdsBound_isInvalidArgument_namingTheSequence() {
        String longest = "r".repeat(RouteBook.MAX_REQUEST_ID_BYTES - 2) + "é"; // 2 bytes in UTF-8: exactly the bound
        PredictPathsResponse r = stub.predictPaths(PredictPathsRequest.newBuilder().addSequences(query(longest, 2))
                .build());
        assertThat(r.getSequences(0).getRequestId()).isEqualTo(longest);

        // Each observed route used to carry its own copy of the id: unbounded, megabytes an observed route.
        Object end = call(PredictPathsRequest.newBuilder().addSequences(query(longest, 2))
                .addSequences(query(longest + "x", 2)));
        assertInvalidArgument(end, "sequences[1].request_id: longer than 512 bytes (UTF-8)");
    }

    /**
     * A sequence of the most tokens, predicted from layer 1, uses one observed route more than it has tokens: each
     * token's own (its layer 0) and the one before the first token's position. All of them are accepted; one more
     * route is refused naming the sequence's observed.
     */
    @Test
    void predictPaths_fullSequenceWithEveryRouteItUses_isAnswered_oneRouteMoreIsInvalidArgument_namingItsObserved() {
        int most = PathPredictions.MAX_TOKENS;
        SequenceQuery.Builder full = SequenceQuery.newBuilder().setRequestId("a").setFirstPosition(1);
        for (int p = 0; p <= most; p++) { // positions 0 (before the first token) .. most (the last token's)
            full.addObserved(route(p));
            if (p > 0) {
                full.addTokenIds(5);
            }
        }
        assertThat(full.getObservedCount()).isEqualTo(most + 1);
        PredictPathsResponse r = stub.predictPaths(PredictPathsRequest.newBuilder().addSequences(full).setFromLayer(1)
                .build());
        assertThat(r.getSequences(0).getLayersList()).hasSize(3).allSatisfy(l -> assertThat(l.getPositionsList())
                .hasSize(most).first().satisfies(p -> assertThat(p.getPosition()).isEqualTo(1)));

        Object end = call(PredictPathsRequest.newBuilder().addSequences(query("a", 1))
                .addSequences(query("b", most + 2)));
        assertInvalidArgument(end, "sequences[1].observed: 4098 routes, at most 4097 per sequence");
    }

    @Test
    void predictPaths_moreObservedRoutesInAllThanOneCallMayCarry_isInvalidArgument_namingTheSequenceThatPassedIt() {
        int perCall = PathPredictions.MAX_OBSERVED_PER_CALL;
        int full = perCall / PathPredictions.MAX_TOKENS; // sequences of MAX_TOKENS observed routes that fit exactly
        PredictPathsRequest.Builder fits = PredictPathsRequest.newBuilder();
        for (int i = 0; i < full; i++) {
            fits.addSequences(query("s" + i, PathPredictions.MAX_TOKENS));
        }
        assertThat(stub.predictPaths(fits.clone().setFromLayer(3).build()).getSequencesCount()).isEqualTo(full);

        Object end = call(fits.addSequences(query("one more", 0)).addSequences(query("past", 1)));
        assertInvalidArgument(end, "sequences[" + (full + 1) + "].observed: " + (perCall + 1) + " routes in "
                + "sequences[0.." + (full + 1) + "], at most " + perCall + " per call");
    }
}
