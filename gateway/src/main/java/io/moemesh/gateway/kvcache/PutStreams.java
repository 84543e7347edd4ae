package io.moemesh.gateway.kvcache;

import com.google.protobuf.ByteString;
import io.grpc.ManagedChannel;
import io.grpc.stub.StreamObserver;
import io.moemesh.model.kv.BlockContents;
import io.moemesh.model.kv.BlockHash;
import io.moemesh.proto.kvcache.v1.BlockLayout;
import io.moemesh.proto.kvcache.v1.KvCacheServiceGrpc;
import io.moemesh.proto.kvcache.v1.PutBlockHeader;
import io.moemesh.proto.kvcache.v1.PutOutcome;
import io.moemesh.proto.kvcache.v1.PutRequest;
import io.moemesh.proto.kvcache.v1.PutResponse;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * {@link KvCacheClient}'s {@code Put}: one client stream per call, each block a header and its payload in chunks of
 * at most {@link KvCacheClient#CHUNK_BYTES}, the outcomes read from the one reply. Thread-safe (no state but the
 * channel's).
 */
final class PutStreams {
    private final ManagedChannel channel;
    private final String endpoint;
    private final ByteString fingerprint;
    private final BlockLayout layout;

    PutStreams(ManagedChannel channel, String endpoint, ByteString fingerprint, BlockLayout layout) {
        this.channel = channel;
        this.endpoint = endpoint;
        this.fingerprint = fingerprint;
        this.layout = layout;
    }

    /** {@link KvCacheClient#put(List, List, boolean[], boolean[], Duration)}, after its reconnect. */
    List<PutOutcome> put(List<BlockContents> blocks, List<byte[]> payloads, boolean[] pinNext, boolean[] swapOut,
                         Duration deadline) {
        CompletableFuture<PutResponse> done = new CompletableFuture<>();
        StreamObserver<PutRequest> out = KvCacheServiceGrpc.newStub(channel).withDeadlineAfter(deadline.toNanos(),
                TimeUnit.NANOSECONDS).put(new StreamObserver<>() {
                    @Override
                    public void onNext(PutResponse value) {
                        done.complete(value);
                    }

                    @Override
                    public void onError(Throwable t) {
                        done.completeExceptionally(t);
                    }

                    @Override
                    public void onCompleted() {
                        done.complete(PutResponse.getDefaultInstance());
                    }
                });
        try {
            for (int i = 0; i < blocks.size(); i++) {
                BlockContents b = blocks.get(i);
                PutBlockHeader.Builder h = PutBlockHeader.newBuilder().setModelFingerprint(fingerprint).setLayout(layout)
                        .setBlockHash(ByteString.copyFrom(b.hash().bytes()))
                        .setParentHash(ByteString.copyFrom(b.parent() == null ? new byte[BlockHash.BYTES]
                                : b.parent().bytes()))
                        .setTenant(b.tenant()).setChainPosition(b.chainPosition()).setPinNext(pinNext[i])
                        .setSwapOut(swapOut[i]);
                for (int t : b.tokens()) {
                    h.addTokenIds(t);
                }
                byte[] p = payloads.get(i);
                for (int off = 0; off < p.length; off += KvCacheClient.CHUNK_BYTES) {
                    PutRequest.Builder m = PutRequest.newBuilder().setData(ByteString.copyFrom(p, off,
                            Math.min(KvCacheClient.CHUNK_BYTES, p.length - off)));
                    if (off == 0) {
                        m.setHeader(h);
                    }
                    out.onNext(m.build());
                }
            }
            out.onCompleted();
        } catch (RuntimeException e) {
            out.onError(e);
            throw e;
        }
        try {
            PutResponse r = done.get(deadline.toNanos() + TimeUnit.SECONDS.toNanos(1), TimeUnit.NANOSECONDS);
            List<PutOutcome> outcomes = new ArrayList<>();
            for (int i = 0; i < blocks.size(); i++) {
                outcomes.add(i < r.getResultsCount() ? r.getResults(i).getOutcome() : PutOutcome.PUT_OUTCOME_UNSPECIFIED);
            }
            return outcomes;
        } catch (ExecutionException e) {
            throw e.getCause() instanceof RuntimeException re ? re : new IllegalStateException(e.getCause());
        } catch (TimeoutException e) {
            throw new IllegalStateException("Put to " + endpoint + " did not answer in time");
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted");
        }
    }
}
