package io.moemesh.router.grpc;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowableOfType;

import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.InsecureServerCredentials;
import io.grpc.ManagedChannel;
import io.grpc.Server;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.moemesh.proto.router.v1.Instance;
import io.moemesh.proto.router.v1.PredictPathsRequest;
import io.moemesh.proto.router.v1.PredictPathsResponse;
import io.moemesh.proto.router.v1.RouterServiceGrpc;
import io.moemesh.proto.router.v1.SequenceQuery;
import io.moemesh.router.coordination.EpochStore;
import io.moemesh.router.coordination.PlacementCoordinator;
import io.moemesh.router.coordination.WatcherRegistry;
import io.moemesh.router.placement.PlacementBudget;
import io.moemesh.router.prediction.ModelShape;
import io.moemesh.router.prediction.PathPredictors;
import io.moemesh.router.reports.ReportedLayer;
import io.moemesh.router.reports.ReportedToken;
import io.moemesh.router.reports.RouteBook;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * How large a PredictPaths answer may get. Within the bounds on the request alone (65,536 (token, layer) predictions,
 * max_experts up to the model's experts) an OLMoE-shaped model (16 layers, 64 experts, top-8) answered 5.8 MB with
 * the default max_experts and 21.7 MB with 64: more than gRPC clients accept by default (4 MiB), after the router
 * had computed and held it all. The answer's own budget (predictions × experts each) refuses those calls up front,
 * and the largest answer it accepts, with every other bound at its worst, fits a default client.
 */
class PredictPathsAnswerSizeTest {
    static final ModelShape OLMOE = new ModelShape(16, 64, 8);
    /** DeepSeek-V3's routing (256 experts, top-8: expert indices of two varint bytes) on 65 layers. */
    static final ModelShape WIDE = new ModelShape(65, 256, 8);
    /** What a gRPC client accepts by default (grpc-java's, grpc-go's, Python's, grpcurl's inbound limit). */
    static final int DEFAULT_CLIENT_LIMIT = 4 * 1024 * 1024;

    @TempDir
    Path stateDir;
    final ExecutorService waits = Executors.newSingleThreadExecutor();
    PlacementCoordinator coordinator;
    Server server;
    ManagedChannel channel;

    RouterServiceGrpc.RouterServiceBlockingStub start(RouteBook book) throws Exception {
        List<Instance> instances = List.of(RouterStreamsSocketTest.instance("expert-0"),
                RouterStreamsSocketTest.instance("expert-1"));
        var settings = new PlacementCoordinator.Settings(instances, book.shape(), false, 1,
                PlacementBudget.slots(2, book.shape().experts()), "affinity", 1_000_000, Duration.ofSeconds(30));
        coordinator = new PlacementCoordinator(settings, book, new RouterStreamsSocketTest.LoadingInstances(),
                new EpochStore(stateDir), Executors.newSingleThreadExecutor(), Executors.newFixedThreadPool(2),
                System::nanoTime);
        coordinator.start().join();
        server = Grpc.newServerBuilderForPort(0, InsecureServerCredentials.create()).addService(new RouterGrpcService(
                book, coordinator, new WatcherRegistry(), waits, () -> { }, OperatorPolicy.unauthenticated()))
                .build().start();
        channel = Grpc.newChannelBuilderForAddress("localhost", server.getPort(), InsecureChannelCredentials.create())
                .build();
        // A client as it comes, with gRPC's default 4 MiB inbound limit.
        return RouterServiceGrpc.newBlockingStub(channel).withDeadlineAfter(2, TimeUnit.MINUTES);
    }

    @AfterEach
    void stop() throws InterruptedException {
        if (channel != null) {
            channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
            server.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
            coordinator.close();
        }
        waits.shutdownNow();
    }

    /**
     * {@code sequences} sequences of {@code tokens} tokens each, {@code layers} layers from layer 1, with the longest
     * request ids and positions.
     */
    static PredictPathsRequest query(int sequences, int tokens, int layers, int maxExperts) {
        PredictPathsRequest.Builder b = PredictPathsRequest.newBuilder().setFromLayer(1).setLookaheadLayers(layers)
                .setMaxExperts(maxExperts);
        for (int s = 0; s < sequences; s++) {
            String id = String.format("%0" + RouteBook.MAX_REQUEST_ID_BYTES + "d", s);
            // The last positions a uint32 holds: 5 varint bytes each in the answer.
            SequenceQuery.Builder q = SequenceQuery.newBuilder().setRequestId(id)
                    .setFirstPosition((int) (PathPredictions.MAX_POSITION - tokens + 1));
            for (int t = 0; t < tokens; t++) {
                q.addTokenIds(t);
            }
            b.addSequences(q);
        }
        return b.build();
    }

    @Test
    void aCallWhoseAnswerWouldPassTheBudget_isRefused_namingMaxExpertsAndTheBudget() throws Exception {
        var stub = start(new RouteBook(OLMOE, PathPredictors.named("learned", OLMOE), 100));
        // 65,536 predictions (the most one call may ask for) × the default 16 experts, then × 64.
        for (int maxExperts : new int[] {0, 64}) {
            StatusRuntimeException e = catchThrowableOfType(StatusRuntimeException.class,
                    () -> stub.predictPaths(query(16, PathPredictions.MAX_TOKENS, 1, maxExperts)));
            assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT);
            assertThat(e.getStatus().getDescription()).startsWith("max_experts: ")
                    .contains("at most " + PathPredictions.MAX_PREDICTED_EXPERTS + " per call");
        }
        // At the budget: 4 × 4096 predictions with the default 16 experts each.
        PredictPathsResponse fits = stub.predictPaths(query(4, PathPredictions.MAX_TOKENS, 1, 0));
        assertThat(fits.getSequences(0).getLayers(0).getPositions(0).getExpertsCount()).isEqualTo(16);
    }

    /**
     * Every bound at its worst: 1024 sequences (the most) with 512-byte ids (the most), 65,536 predictions (the most)
     * at 5-byte positions, and max_experts filling the budget exactly; the predictions as 64 tokens × 1 layer or as
     * 1 token × 64 layers (a layer header per sequence and layer).
     */
    @ParameterizedTest(name = "{0} tokens x {1} layers a sequence")
    @CsvSource({"64, 1", "1, 64"})
    void theLargestAnswerTheBudgetAccepts_fitsADefaultClient(int tokens, int layers) throws Exception {
        RouteBook book = new RouteBook(WIDE, PathPredictors.named("popularity", WIDE), 100);
        // Routes to the highest experts, so the predicted ones (most popular first) take two varint bytes each.
        List<ReportedToken> routes = new ArrayList<>();
        for (int i = 0; i < 8; i++) {
            List<ReportedLayer> route = new ArrayList<>();
            for (int l = 0; l < WIDE.layers(); l++) {
                long[] experts = new long[WIDE.topK()];
                for (int k = 0; k < experts.length; k++) {
                    experts[k] = WIDE.experts() - 1 - k;
                }
                route.add(new ReportedLayer(l, experts, new float[0]));
            }
            routes.add(new ReportedToken("r", i, 1, route));
        }
        book.ingest(routes);
        var stub = start(book);
        int maxExperts = (int) (PathPredictions.MAX_PREDICTED_EXPERTS / PathPredictions.MAX_PREDICTIONS);
        PredictPathsRequest worst = query(PathPredictions.MAX_SEQUENCES, tokens, layers, maxExperts);

        PredictPathsResponse answer = stub.predictPaths(worst);

        assertThat(answer.getSequencesCount()).isEqualTo(PathPredictions.MAX_SEQUENCES);
        assertThat(answer.getSequencesList()).allSatisfy(q -> assertThat(q.getLayersList()).hasSize(layers)
                .allSatisfy(l -> assertThat(l.getPositionsList()).hasSize(tokens)));
        assertThat(answer.getSequences(0).getLayers(0).getPositions(0).getExpertsList())
                .allMatch(e -> e >= 128).hasSize(maxExperts);
        // 3.15 MB with 1 token × 64 layers. An expert index of a model with more experts takes up to 3 varint bytes
        // more (5 bytes from 2^28 experts on): room for them too.
        assertThat(answer.getSerializedSize() + 3 * PathPredictions.MAX_PREDICTED_EXPERTS)
                .isLessThanOrEqualTo(DEFAULT_CLIENT_LIMIT);
    }
}
