package io.moemesh.gateway.placement;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.grpc.ManagedChannel;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.moemesh.gateway.support.TestCertificates;
import io.moemesh.gateway.support.TestRouter;
import io.moemesh.proto.router.v1.Instance;
import io.moemesh.proto.router.v1.Placement;
import io.moemesh.service.placement.EvenPlacement;
import io.moemesh.service.placement.PlacementFiles;
import io.moemesh.service.placement.PlacementTable;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.stream.IntStream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The router's placement watch over real gRPC with mutual TLS, against a small router on a real socket: newer
 * epochs are served, anything else (not fitting the model, not newer) is ignored and counted while the last good
 * placement keeps serving, a restarted router is reconnected to with the epoch in force, and a placement file next
 * to the router serves until the router has a higher epoch.
 */
class RouterPlacementSourceTest {
    private static final int LAYERS = 2;
    private static final int EXPERTS = 4;
    private static final Duration WAIT = Duration.ofSeconds(20);

    @TempDir
    Path dir;
    private TestRouter router;
    private ManagedChannel channel;
    private RouterPlacementSource source;

    @BeforeEach
    void startRouter() {
        router = new TestRouter();
        channel = NettyChannelBuilder.forTarget(router.endpoint(), TestCertificates.credentials("gateway").channel())
                .build();
    }

    @AfterEach
    void stop() {
        if (source != null) {
            source.close();
        }
        channel.shutdownNow();
        router.close();
    }

    private static Placement placement(long epoch, int instances, int layers) {
        List<Instance> ins = IntStream.range(0, instances).mapToObj(i -> Instance.newBuilder().setId("expert-" + i)
                .setEndpoint("127.0.0.1:" + (7101 + i)).build()).toList();
        return EvenPlacement.build(epoch, ins, layers, EXPERTS, false, 1);
    }

    private RouterPlacementSource follow(PlacementSource file) {
        source = new RouterPlacementSource(channel, router.endpoint(), "gw-test", LAYERS, EXPERTS, file,
                Duration.ofMillis(50), Duration.ofMillis(400)).start();
        return source;
    }

    private long served() {
        return source.current().map(PlacementTable::epoch).orElse(0L);
    }

    @Test
    void newerEpochs_areServed_andTheWatchNamesTheWatcher() {
        follow(null);
        assertThat(source.current()).as("nothing before the router sends").isEmpty();
        assertThat(source.absentReason()).isEqualTo("no expert placement yet: waiting for the router at "
                + router.endpoint());
        router.publish(placement(1, 2, LAYERS));
        await().atMost(WAIT).until(() -> served() == 1);
        router.publish(placement(2, 3, LAYERS));
        await().atMost(WAIT).until(() -> served() == 2);

        assertThat(source.current().orElseThrow().instances()).hasSize(3);
        assertThat(router.watches).first().satisfies(w -> {
            assertThat(w.getWatcherId()).isEqualTo("gw-test");
            assertThat(w.getKnownEpoch()).isZero();
        });
        assertThat(source.rejected()).isZero();
    }

    /**
     * A newer epoch that does not fit is named as unapplied (the router moved on to it: readiness fails on it) until
     * a later epoch fits; an epoch that is not newer is only ignored.
     */
    @Test
    void placementThatDoesNotFit_orIsNotNewer_isIgnored_aNewerOneNamedUnappliedUntilALaterOneFits() {
        follow(null);
        router.publish(placement(1, 2, LAYERS));
        await().atMost(WAIT).until(() -> served() == 1);
        assertThat(source.unapplied()).isEmpty();

        router.publish(placement(2, 2, LAYERS + 3));
        await().atMost(WAIT).until(() -> source.rejected() == 1);
        assertThat(served()).as("unknown layers: rejected").isEqualTo(1);
        assertThat(source.unapplied()).hasValueSatisfying(why -> assertThat(why)
                .startsWith("placement epoch 2 from the router at " + router.endpoint() + " does not fit the model: ")
                .contains("layer 2"));

        router.publish(placement(1, 3, LAYERS));
        await().atMost(WAIT).until(() -> source.rejected() == 2);
        assertThat(served()).as("the same epoch again: rejected").isEqualTo(1);
        assertThat(source.current().orElseThrow().instances()).hasSize(2);
        assertThat(source.unapplied()).as("epoch 2 is still the router's newest").hasValueSatisfying(why ->
                assertThat(why).startsWith("placement epoch 2 "));

        router.publish(placement(3, 3, LAYERS));
        await().atMost(WAIT).until(() -> served() == 3);
        assertThat(source.rejected()).isEqualTo(2);
        assertThat(source.unapplied()).isEmpty();
    }

    @Test
    void placementWithoutAnEpoch_isNotApplied() {
        follow(null);
        // As the watch hands it over (a router answering known_epoch 0 sends only epochs above 0).
        source.accept(placement(0, 2, LAYERS));
        assertThat(source.rejected()).isOne();
        assertThat(source.current()).isEmpty();
        assertThat(source.unapplied()).isEmpty();

        router.publish(placement(1, 2, LAYERS));
        await().atMost(WAIT).until(() -> served() == 1);
    }

    /**
     * A router that lost its state (and its ConfigMap write of the epoch the gateway rejected) deals again from below
     * that epoch: the lower epoch it then publishes is taken, and the gateway is ready on it.
     */
    @Test
    void epochTakenAfterARejectedHigherOne_clearsTheRejection() {
        follow(null);
        router.publish(placement(1, 2, LAYERS));
        await().atMost(WAIT).until(() -> served() == 1);
        router.publish(placement(3, 2, LAYERS + 3));
        await().atMost(WAIT).until(() -> source.rejected() == 1);
        assertThat(source.unapplied()).hasValueSatisfying(why -> assertThat(why).startsWith("placement epoch 3 "));

        router.publish(placement(2, 3, LAYERS));
        await().atMost(WAIT).until(() -> served() == 2);
        assertThat(source.unapplied()).isEmpty();
    }

    @Test
    void routerRestartedOnTheSamePort_isReconnectedWithTheKnownEpoch_andNewerEpochsArrive() {
        follow(null);
        router.publish(placement(1, 2, LAYERS));
        await().atMost(WAIT).until(() -> served() == 1);

        router.stop();
        await().atMost(WAIT).until(() -> source.reconnects() >= 1);
        assertThat(served()).as("the last placement keeps serving while the router is away").isEqualTo(1);
        router.publish(placement(2, 3, LAYERS));
        router.restart();

        await().atMost(WAIT).until(() -> served() == 2);
        assertThat(router.watches.getLast().getKnownEpoch()).as("the reconnect tells the epoch in force").isEqualTo(1);
        assertThat(router.watches.getLast().getWatcherId()).isEqualTo("gw-test");
    }

    @Test
    void placementFile_servesUntilTheRouterHasAHigherEpoch() {
        Path file = dir.resolve("placement.json");
        PlacementFiles.write(file, placement(3, 2, LAYERS));
        FilePlacementSource fromFile = FilePlacementSource.optional(file, LAYERS, EXPERTS, Duration.ofMillis(10),
                System::nanoTime);
        follow(fromFile);
        await().atMost(WAIT).until(() -> router.watches.size() == 1);
        assertThat(router.watches.getFirst().getKnownEpoch()).as("the file's epoch is known").isEqualTo(3);
        assertThat(served()).isEqualTo(3);

        router.publish(placement(2, 3, LAYERS));
        router.publish(placement(4, 3, LAYERS));
        await().atMost(WAIT).until(() -> served() == 4);
        assertThat(source.rejected()).as("an older epoch than the file's is not the router's mistake").isZero();
    }

    @Test
    void missingPlacementFile_nextToARouter_waitsForEither() {
        Path file = dir.resolve("later.json");
        FilePlacementSource fromFile = FilePlacementSource.optional(file, LAYERS, EXPERTS, Duration.ofMillis(10),
                System::nanoTime);
        follow(fromFile);
        assertThat(source.current()).isEmpty();
        PlacementFiles.write(file, placement(5, 2, LAYERS));
        await().atMost(WAIT).until(() -> served() == 5);
    }
}
