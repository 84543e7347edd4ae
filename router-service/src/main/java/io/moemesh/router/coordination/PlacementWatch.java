package io.moemesh.router.coordination;

import io.moemesh.proto.router.v1.Placement;
import java.util.function.Consumer;

/** One watcher of a {@link PlacementCoordinator}: epochs strictly increasing, one delivery at a time. */
final class PlacementWatch {
    private final Consumer<Placement> sink;
    private long sent;

    PlacementWatch(Consumer<Placement> sink, long known) {
        this.sink = sink;
        this.sent = known;
    }

    synchronized void offer(Placement p) {
        if (Long.compareUnsigned(p.getEpoch(), sent) > 0) {
            sent = p.getEpoch();
            sink.accept(p);
        }
    }
}
