package io.moemesh.gateway.support;

import com.google.protobuf.ByteString;
import io.grpc.Status;
import io.grpc.stub.StreamObserver;
import io.moemesh.model.kv.BlockHash;
import io.moemesh.model.kv.ModelFingerprint;
import io.moemesh.proto.kvcache.v1.BlockLayout;
import io.moemesh.proto.kvcache.v1.GetRequest;
import io.moemesh.proto.kvcache.v1.GetResponse;
import io.moemesh.proto.kvcache.v1.KvCacheServiceGrpc;
import io.moemesh.proto.kvcache.v1.LocateRequest;
import io.moemesh.proto.kvcache.v1.LocateResponse;
import io.moemesh.proto.kvcache.v1.LocatedBlock;
import io.moemesh.proto.kvcache.v1.LookupRequest;
import io.moemesh.proto.kvcache.v1.LookupResponse;
import io.moemesh.proto.kvcache.v1.PinRequest;
import io.moemesh.proto.kvcache.v1.PinResponse;
import io.moemesh.proto.kvcache.v1.PutOutcome;
import io.moemesh.proto.kvcache.v1.PutRequest;
import io.moemesh.proto.kvcache.v1.PutResponse;
import io.moemesh.proto.kvcache.v1.PutResult;
import io.moemesh.proto.kvcache.v1.Tier;
import io.moemesh.proto.kvcache.v1.UnpinRequest;
import io.moemesh.proto.kvcache.v1.UnpinResponse;
import io.moemesh.service.grpc.GrpcServerLifecycle;
import java.io.ByteArrayOutputStream;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A small in-memory kvcache.v1 KvCacheService on a real socket with mutual TLS (the mesh certificate "expert-2" of
 * {@link TestCertificates}), following the contract the gateway relies on: Put streams of header + chunks, a block
 * stored only when complete and only when its hash matches its parent, tokens, fingerprint and tenant; Lookup of the
 * leading run after the held blocks, echoing held_blocks in counted_from (or, with {@link #legacyLookup}, as a service
 * that predates held_blocks: from block 0, no echo), every request kept in {@link #lookupRequests}; Get in chunks of at
 * most 1 MiB with {@code found = false} for a miss; Locate of the leading stored run, every block "in memory" (the
 * client Gets them, as from the real service's DRAM tier), every request kept in {@link #locateRequests} (it serves
 * any caller: the fake has no peer-uid socket check); a block_tokens other than the configured one is
 * FAILED_PRECONDITION; Pin of stored blocks under a pin id (echoed) and Unpin of that id. Knobs for the failure tests:
 * {@link #delay} (every Lookup and Get waits first), {@link #lookupHold}, {@link #corrupt} (Get returns the bytes of another stored block of
 * the same size), {@link #shortBlockAt} (Get breaks the chunk contract there), {@link #putDelay}, {@link #putHold} (Put
 * answers wait for the test), {@link #silentPins} (Pin and Unpin never answer), {@link #stop} / {@link #restart}
 * (down). Clearing {@link #blocks} is a service that lost
 * them.
 */
public final class FakeKvCacheService implements AutoCloseable {
    /** Stored payloads by hash. */
    public final Map<ByteString, byte[]> blocks = new ConcurrentHashMap<>();
    public volatile Duration delay = Duration.ZERO;
    public volatile Duration putDelay = Duration.ZERO;
    /**
     * While set, every Put's answer (its blocks already stored) waits until this completes, on no gRPC thread: the
     * test holds the gateway's writer in a Put for as long as it needs and releases it with {@code complete(null)}.
     * {@link #heldPuts} counts the Puts that arrived complete and wait.
     */
    public volatile CompletableFuture<Void> putHold;
    public final AtomicInteger heldPuts = new AtomicInteger();
    public volatile boolean corrupt;
    /** Get's reply for the block at this index of a request (≥ 0) ends 4 bytes short of the block: a bad reply. */
    public volatile int shortBlockAt = -1;
    /** While set, Pins and Unpins are never answered (a black-holed service: the caller's deadline ends them). */
    public volatile boolean silentPins;
    /** While set, every Put is answered DECLINED for each block (a full service), nothing stored. */
    public volatile boolean declinePuts;
    /** Pins and Unpins that arrived. */
    public final AtomicInteger pinCalls = new AtomicInteger();
    public final AtomicInteger unpinCalls = new AtomicInteger();
    /** Pins held now, by hash (pins nest). */
    public final Map<ByteString, Integer> pins = new ConcurrentHashMap<>();
    /** Pin id → the hashes its Pin pinned. */
    private final Map<ByteString, List<ByteString>> pinIds = new ConcurrentHashMap<>();
    /**
     * While set, every Lookup waits (at most 30 s) until the barrier's other parties looked up too: requests that
     * arrive apart are then admitted together, since each waits for its fetch.
     */
    public volatile java.util.concurrent.CyclicBarrier lookupGate;
    public final AtomicInteger lookups = new AtomicInteger();
    /** Every Lookup's request, in arrival order. */
    public final List<LookupRequest> lookupRequests = new java.util.concurrent.CopyOnWriteArrayList<>();
    /**
     * While set, every Lookup's answer waits until this completes, on no gRPC thread (its arrival is counted in
     * {@link #lookups} at once): the test keeps Lookups unanswered for as long as it needs.
     */
    public volatile CompletableFuture<Void> lookupHold;
    /** Every Locate's request, in arrival order. */
    public final List<LocateRequest> locateRequests = new java.util.concurrent.CopyOnWriteArrayList<>();
    /** Answer Lookups as a service that predates held_blocks: counted from block 0, counted_from left 0. */
    public volatile boolean legacyLookup;
    public final AtomicInteger gets = new AtomicInteger();
    public final AtomicInteger stored = new AtomicInteger();
    private final int blockTokens;
    private final java.nio.file.Path unixSocket;
    private GrpcServerLifecycle server;
    private int port;

    public FakeKvCacheService(int blockTokens) {
        this(blockTokens, null);
    }

    /** Listening on the domain socket {@code unixSocket} too (null: TCP only), as the real service can. */
    public FakeKvCacheService(int blockTokens, java.nio.file.Path unixSocket) {
        this.blockTokens = blockTokens;
        this.unixSocket = unixSocket;
        start(0);
    }

    private synchronized void start(int onPort) {
        server = new GrpcServerLifecycle("test-kvcache", "127.0.0.1", onPort,
                TestCertificates.credentials("expert-2").server(), 64 << 20, Duration.ofMillis(200),
                List.of(new Service()), List.of());
        if (unixSocket != null) {
            server.alsoOnUnixSocket(unixSocket, "test.kvcache-unix-socket");
        }
        server.start();
        port = server.port();
    }

    public String endpoint() {
        return "127.0.0.1:" + port;
    }

    /** {@code unix:///path} of the domain socket given at construction. */
    public String unixEndpoint() {
        return "unix://" + unixSocket;
    }

    public synchronized void stop() {
        server.stop();
    }

    public synchronized void restart() {
        start(port);
    }

    @Override
    public void close() {
        stop();
    }

    /**
     * The simulated slowness of a knob: {@code answer} runs after {@code d} on a timer thread (at once when zero), so
     * a slow service holds no gRPC thread; a failure it throws ends the call with its status.
     */
    private static void later(Duration d, StreamObserver<?> out, Runnable answer) {
        Runnable guarded = () -> {
            try {
                answer.run();
            } catch (RuntimeException e) {
                out.onError(e);
            }
        };
        if (d.isZero()) {
            guarded.run();
        } else {
            CompletableFuture.delayedExecutor(d.toNanos(), TimeUnit.NANOSECONDS).execute(guarded);
        }
    }

    private void checkLayout(BlockLayout l) {
        if (l.getBlockTokens() != blockTokens) {
            throw Status.FAILED_PRECONDITION.withDescription("layout.block_tokens " + l.getBlockTokens()
                    + " is not the service's " + blockTokens).asRuntimeException();
        }
    }

    private static int payloadBytes(BlockLayout l) {
        return 2 * l.getNumLayers() * l.getNumKvHeads() * l.getBlockTokens() * l.getHeadDim() * Float.BYTES;
    }

    private final class Service extends KvCacheServiceGrpc.KvCacheServiceImplBase {
        @Override
        public void lookup(LookupRequest req, StreamObserver<LookupResponse> out) {
            lookups.incrementAndGet();
            lookupRequests.add(req);
            java.util.concurrent.CyclicBarrier gate = lookupGate;
            if (gate != null) {
                try {
                    gate.await(30, java.util.concurrent.TimeUnit.SECONDS);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                } catch (java.util.concurrent.BrokenBarrierException | java.util.concurrent.TimeoutException e) {
                    // answer anyway: the test's own assertions say what went wrong
                }
            }
            Runnable reply = () -> later(delay, out, () -> {
                checkLayout(req.getLayout());
                int from = legacyLookup ? 0 : req.getHeldBlocks();
                LookupResponse.Builder r = LookupResponse.newBuilder().setCountedFrom(from);
                for (ByteString h : req.getBlockHashesList().subList(from, req.getBlockHashesCount())) {
                    if (!blocks.containsKey(h)) {
                        break;
                    }
                    r.setPresentBlocks(r.getPresentBlocks() + 1).addTiers(Tier.TIER_DRAM);
                }
                out.onNext(r.build());
                out.onCompleted();
            });
            CompletableFuture<Void> hold = lookupHold;
            if (hold == null) {
                reply.run();
            } else {
                hold.thenRunAsync(reply);
            }
        }

        @Override
        public void locate(LocateRequest req, StreamObserver<LocateResponse> out) {
            locateRequests.add(req);
            checkLayout(req.getLayout());
            LocateResponse.Builder r = LocateResponse.newBuilder().setLeaseMillis(req.getLeaseMillis())
                    .setLayout(req.getLayout());
            for (ByteString h : req.getBlockHashesList()) {
                if (!blocks.containsKey(h)) {
                    break;
                }
                r.setPresentBlocks(r.getPresentBlocks() + 1).addBlocks(LocatedBlock.newBuilder().setInMemory(true));
            }
            out.onNext(r.build());
            out.onCompleted();
        }

        @Override
        public void get(GetRequest req, StreamObserver<GetResponse> out) {
            gets.incrementAndGet();
            later(delay, out, () -> {
                checkLayout(req.getLayout());
                for (int i = 0; i < req.getBlockHashesCount(); i++) {
                    ByteString h = req.getBlockHashes(i);
                    byte[] data = blocks.get(h);
                    if (data != null && corrupt) {
                        data = blocks.entrySet().stream().filter(e -> !e.getKey().equals(h)
                                && e.getValue().length == blocks.get(h).length).map(Map.Entry::getValue).findFirst()
                                .orElse(new byte[data.length]);
                    }
                    if (data == null) {
                        out.onNext(GetResponse.newBuilder().setIndex(i).setFound(false).build());
                        continue;
                    }
                    int chunk = 1 << 20;
                    int end = i == shortBlockAt ? data.length - 4 : data.length;
                    for (int off = 0; off < end; off += chunk) {
                        int n = Math.min(chunk, end - off);
                        out.onNext(GetResponse.newBuilder().setIndex(i).setFound(true).setTier(Tier.TIER_DRAM).setOffset(off)
                                .setData(ByteString.copyFrom(data, off, n)).setLast(off + n == end).build());
                    }
                }
                out.onCompleted();
            });
        }

        @Override
        public void pin(PinRequest req, StreamObserver<PinResponse> out) {
            pinCalls.incrementAndGet();
            if (silentPins) {
                return;
            }
            checkLayout(req.getLayout());
            PinResponse.Builder r = PinResponse.newBuilder().setPinId(req.getPinId());
            List<ByteString> took = new java.util.ArrayList<>();
            for (ByteString h : req.getBlockHashesList()) {
                boolean stored = blocks.containsKey(h);
                if (stored) {
                    pins.merge(h, 1, Integer::sum);
                    took.add(h);
                }
                r.addPinned(stored);
            }
            if (!req.getPinId().isEmpty()) {
                pinIds.put(req.getPinId(), took);
            }
            out.onNext(r.build());
            out.onCompleted();
        }

        @Override
        public void unpin(UnpinRequest req, StreamObserver<UnpinResponse> out) {
            unpinCalls.incrementAndGet();
            if (silentPins) {
                return;
            }
            checkLayout(req.getLayout());
            List<ByteString> took = req.getPinId().isEmpty() ? req.getBlockHashesList()
                    : pinIds.getOrDefault(req.getPinId(), List.of());
            pinIds.remove(req.getPinId());
            int released = 0;
            for (ByteString h : took) {
                if (pins.containsKey(h)) {
                    pins.computeIfPresent(h, (k, n) -> n == 1 ? null : n - 1);
                    released++;
                }
            }
            out.onNext(UnpinResponse.newBuilder().setReleased(released).build());
            out.onCompleted();
        }

        @Override
        public StreamObserver<PutRequest> put(StreamObserver<PutResponse> out) {
            return new StreamObserver<>() {
                private final PutResponse.Builder results = PutResponse.newBuilder();
                private ByteString hash;
                private int size;
                private ByteArrayOutputStream data;
                private boolean failed;

                @Override
                public void onNext(PutRequest m) {
                    if (failed) {
                        return;
                    }
                    try {
                        if (m.hasHeader()) {
                            if (data != null) {
                                throw Status.INVALID_ARGUMENT.withDescription("header before the block was complete")
                                        .asRuntimeException();
                            }
                            var hd = m.getHeader();
                            checkLayout(hd.getLayout());
                            byte[] parent = hd.getParentHash().toByteArray();
                            int[] tokens = hd.getTokenIdsList().stream().mapToInt(Integer::intValue).toArray();
                            BlockHash expected = BlockHash.of(java.util.Arrays.equals(parent, new byte[32]) ? null
                                            : BlockHash.fromBytes(parent), tokens, 0, tokens.length,
                                    ModelFingerprint.of(hd.getModelFingerprint().toByteArray()), hd.getTenant());
                            if (!java.util.Arrays.equals(expected.bytes(), hd.getBlockHash().toByteArray())) {
                                throw Status.INVALID_ARGUMENT.withDescription("block_hash").asRuntimeException();
                            }
                            hash = hd.getBlockHash();
                            size = payloadBytes(hd.getLayout());
                            data = new ByteArrayOutputStream();
                        }
                        if (data == null) {
                            throw Status.INVALID_ARGUMENT.withDescription("data before a header").asRuntimeException();
                        }
                        data.writeBytes(m.getData().toByteArray());
                        if (data.size() > size) {
                            throw Status.INVALID_ARGUMENT.withDescription("data (oversize put)").asRuntimeException();
                        }
                        if (data.size() == size && declinePuts) {
                            // A full service: it answers, storing nothing.
                            results.addResults(PutResult.newBuilder().setBlockHash(hash)
                                    .setOutcome(PutOutcome.PUT_OUTCOME_DECLINED));
                            data = null;
                        } else if (data.size() == size) {
                            boolean had = blocks.putIfAbsent(hash, data.toByteArray()) != null;
                            if (!had) {
                                stored.incrementAndGet();
                            }
                            results.addResults(PutResult.newBuilder().setBlockHash(hash).setOutcome(had
                                    ? PutOutcome.PUT_OUTCOME_ALREADY_PRESENT : PutOutcome.PUT_OUTCOME_STORED)
                                    .setTier(Tier.TIER_DRAM));
                            data = null;
                        }
                    } catch (RuntimeException e) {
                        failed = true;
                        out.onError(e);
                    }
                }

                @Override
                public void onError(Throwable t) {
                }

                @Override
                public void onCompleted() {
                    if (failed) {
                        return;
                    }
                    if (data != null) {
                        out.onError(Status.INVALID_ARGUMENT.withDescription("stream ended mid-block").asRuntimeException());
                        return;
                    }
                    PutResponse answer = results.build();
                    Runnable reply = () -> later(putDelay, out, () -> {
                        out.onNext(answer);
                        out.onCompleted();
                    });
                    CompletableFuture<Void> hold = putHold;
                    if (hold == null) {
                        reply.run();
                    } else {
                        heldPuts.incrementAndGet();
                        hold.thenRunAsync(reply);
                    }
                }
            };
        }
    }
}
