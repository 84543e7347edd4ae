package io.moemesh.router.grpc;

import io.grpc.Status;
import io.grpc.stub.StreamObserver;
import io.moemesh.proto.router.v1.ReportRoutesRequest;
import io.moemesh.proto.router.v1.ReportRoutesResponse;
import io.moemesh.proto.router.v1.RouteSample;
import io.moemesh.router.coordination.PlacementCoordinator;
import io.moemesh.router.coordination.WatcherRegistry;
import io.moemesh.router.reports.ReportedToken;
import io.moemesh.router.reports.RouteBook;
import io.moemesh.service.grpc.OpenStreams;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Supplier;

/**
 * One ReportRoutes stream: each message is validated as a whole and ingested (a malformed one ends the stream with
 * the field's INVALID_ARGUMENT, its samples counted dropped); the answer, the samples accepted, comes when the
 * client half-closes. Registered with the router's open calls ({@link OpenStreams}) while open: when the router
 * stops the stream ends with UNAVAILABLE (what came before stays ingested; the gateway reopens one, to this router
 * once it is back or to another), so a stream that a gateway keeps for a minute does not hold the stop. Its
 * callbacks and that end are serialised on this object (a response observer takes one caller at a time). The epoch a
 * gateway reports applied is a hint for the coordinator's epoch floor ({@code EpochFloor#hint}): once an instance
 * confirms it, a router that lost its state does not publish below it.
 */
final class ReportStream implements StreamObserver<ReportRoutesRequest> {
    private final RouteBook book;
    private final WatcherRegistry watchers;
    private final PlacementCoordinator coordinator;
    private final StreamObserver<ReportRoutesResponse> responses;
    private final OpenStreams<Runnable> calls;
    /** The status a stop (or a standby) ends the stream with. */
    private final Supplier<Status> refusal;
    private final Runnable endAtStop = this::endAtStop;
    private long accepted;
    /** Answered, refused, or ended by the stop: nothing more is read or sent. */
    private boolean done;

    private ReportStream(RouteBook book, WatcherRegistry watchers, PlacementCoordinator coordinator,
                         StreamObserver<ReportRoutesResponse> responses, OpenStreams<Runnable> calls,
                         Supplier<Status> refusal) {
        this.refusal = refusal;
        this.book = book;
        this.watchers = watchers;
        this.coordinator = coordinator;
        this.responses = responses;
        this.calls = calls;
    }

    /** The stream's request observer, or one that ignores everything when the router is stopping (refused). */
    static StreamObserver<ReportRoutesRequest> open(RouteBook book, WatcherRegistry watchers,
                                                   PlacementCoordinator coordinator,
                                                   StreamObserver<ReportRoutesResponse> responses,
                                                   OpenStreams<Runnable> calls, Supplier<Status> refusal) {
        ReportStream s = new ReportStream(book, watchers, coordinator, responses, calls, refusal);
        if (!calls.register(s.endAtStop)) {
            s.endAtStop();
        }
        return s;
    }

    @Override
    public synchronized void onNext(ReportRoutesRequest req) {
        if (done) {
            return;
        }
        try {
            List<ReportedToken> samples = new ArrayList<>(req.getSamplesCount());
            try {
                if (req.getSource().isBlank()) {
                    throw new IllegalArgumentException("source: must name the reporting gateway (its "
                            + "WatchPlacement watcher_id)");
                }
                // Kept per source (WatcherRegistry): bounded like the watcher id it must equal.
                RouteBook.checkIdLength(req.getSource(), WatcherRegistry.MAX_ID_BYTES, "source");
                float rate = req.getSampleRate();
                if (!(rate >= 0 && rate <= 1)) {
                    throw new IllegalArgumentException("sample_rate: " + rate + " is not in (0, 1] (0 = not given)");
                }
                for (RouteSample s : req.getSamplesList()) {
                    samples.add(RouteMessages.toReported(s.getRequestId(), s.getRoute()));
                }
            } catch (IllegalArgumentException e) {
                // refused before the book saw it: its samples are dropped all the same (the metric's promise)
                book.countDropped(req.getSamplesCount());
                throw e;
            }
            accepted += book.ingest(samples);
            watchers.reportApplied(req.getSource(), req.getPlacementEpoch());
            // A hint, checked against the instances (2^63 and above, unsigned, are no router's epochs: left out).
            if (req.getPlacementEpoch() > coordinator.floor().highestElsewhere()) {
                coordinator.floor().hint(req.getPlacementEpoch(), "gateway " + req.getSource()
                        + "'s ReportRoutes placement_epoch");
            }
        } catch (RuntimeException e) {
            finish();
            Status status = RouterStatuses.toStatus(e);
            RouterGrpcService.logRefusal("ReportRoutes", status, e);
            responses.onError(status.asRuntimeException());
        }
    }

    @Override
    public synchronized void onError(Throwable t) {
        // The client went away; what it sent before is ingested.
        finish();
    }

    @Override
    public synchronized void onCompleted() {
        if (!done) {
            finish();
            responses.onNext(ReportRoutesResponse.newBuilder().setAccepted(accepted)
                    .setPlacementEpoch(coordinator.currentEpoch()).build());
            responses.onCompleted();
        }
    }

    private synchronized void endAtStop() {
        if (done) {
            return;
        }
        finish();
        try {
            responses.onError(refusal.get().asRuntimeException());
        } catch (RuntimeException e) {
            // the client cancelled meanwhile: nothing to end
        }
    }

    private void finish() {
        done = true;
        calls.unregister(endAtStop);
    }
}
