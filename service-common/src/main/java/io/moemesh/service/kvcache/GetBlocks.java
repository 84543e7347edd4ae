package io.moemesh.service.kvcache;

import com.google.common.util.concurrent.MoreExecutors;
import io.grpc.CallOptions;
import io.grpc.Channel;
import io.grpc.ClientCall;
import io.grpc.Metadata;
import io.grpc.MethodDescriptor;
import io.grpc.Status;
import io.moemesh.proto.kvcache.v1.GetRequest;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;

/**
 * A {@code Get} stream's replies assembled into block payloads, each checked against the contract before it is
 * used: replies for the blocks in request order, a block's chunks in order at the offsets they claim, exactly a
 * block's bytes, then {@code last}. The leading run of found blocks is the answer: it ends at the first block not
 * found (the service's miss) or at the first reply that breaks the contract ({@link BadReplyException}, raised by
 * {@link #read} and {@link #call} only when no block came before it: a run of good blocks is still usable; {@link
 * #run} returns it with the run, so a caller learns of a bad block after good ones too).
 *
 * <p>A block of one chunk is the array the marshaller read it into ({@link GetReply#blockArray}); the later chunks
 * of a larger block are copied into its first chunk's array. So a block arrives with one copy of its bytes.
 *
 * <p>{@link #call} reads a whole call on the transport thread that receives it (every reply requested at once,
 * parsed and assembled where it arrives); the caller's thread waits once for the answer. A blocking stub's
 * iterator ({@link #read}) instead hands every reply from the transport thread to the caller's and asks the
 * transport for the next one after it: two thread wake-ups per message, which on a busy host cost more than the
 * message's bytes (docs/performance.md, "KV-cache restore").
 */
public final class GetBlocks {
    /** A reply broke the Get contract; the message says which block and how. */
    public static final class BadReplyException extends RuntimeException {
        BadReplyException(String message) {
            super(message);
        }
    }

    /**
     * A call's leading run and how it ended.
     *
     * @param blocks the payloads of the run, block 0 first
     * @param bad    the contract break that ended it (at block {@code blocks.size()}), or null: it ended with all
     *               the requested blocks or at a miss
     */
    public record Run(List<byte[]> blocks, BadReplyException bad) {
    }

    private GetBlocks() {
    }

    /**
     * The payloads of the leading run of the {@code requested} blocks that the replies carry, block 0 first.
     *
     * @param replies    the call's replies (a blocking stub's iterator); read until the run ends, not further
     * @param requested  the number of hashes requested
     * @param blockBytes the bytes of one block of the layout
     * @throws BadReplyException when the first block's replies break the contract
     */
    public static List<byte[]> read(Iterator<GetReply> replies, int requested, int blockBytes) {
        Assembler a = new Assembler(requested, blockBytes);
        while (!a.ended() && replies.hasNext()) {
            a.accept(replies.next());
        }
        Run r = a.finish();
        if (r.bad() != null && r.blocks().isEmpty()) {
            throw r.bad();
        }
        return r.blocks();
    }

    /**
     * One {@code Get} call of {@code request} on {@code channel}, read as {@link #read} does but on the transport
     * thread (see the class comment); blocks the caller until the run ended. Once the run ends (all requested
     * blocks, a miss, a bad reply) the call is cancelled, so the service stops sending; a failure of the call
     * before that (deadline, status) is thrown as the call's {@link io.grpc.StatusRuntimeException}, as a blocking
     * stub would. An interrupt cancels the call.
     *
     * @param options the call's options (its deadline); its executor is replaced (the transport's thread)
     * @throws BadReplyException when the first block's replies break the contract
     */
    public static List<byte[]> call(Channel channel, MethodDescriptor<GetRequest, GetReply> method,
                                    CallOptions options, GetRequest request, int requested, int blockBytes) {
        Run r = run(channel, method, options, request, requested, blockBytes);
        if (r.bad() != null && r.blocks().isEmpty()) {
            throw r.bad();
        }
        return r.blocks();
    }

    /**
     * As {@link #call}, but a reply that breaks the contract is never thrown: it ends the run, and the run says so
     * ({@link Run#bad}), also when good blocks came before it (a caller counting bad blocks sees every one).
     */
    public static Run run(Channel channel, MethodDescriptor<GetRequest, GetReply> method, CallOptions options,
                          GetRequest request, int requested, int blockBytes) {
        ClientCall<GetRequest, GetReply> call = channel.newCall(method,
                options.withExecutor(MoreExecutors.directExecutor()));
        Collector collector = new Collector(call, new Assembler(requested, blockBytes));
        boolean done = false;
        try {
            call.start(collector, new Metadata());
            call.sendMessage(request);
            call.halfClose();
            // Every reply at once: each is parsed into its block as it arrives; the answer holds them anyway.
            call.request(Integer.MAX_VALUE);
            Run out = collector.answer.get();
            done = true;
            return out;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw Status.CANCELLED.withDescription("interrupted while waiting for Get").withCause(e)
                    .asRuntimeException();
        } catch (ExecutionException e) {
            done = true;
            throw e.getCause() instanceof RuntimeException re ? re : new IllegalStateException(e.getCause());
        } finally {
            if (!done) {
                call.cancel("the caller stopped waiting", null);
            }
        }
    }

    /** The call's listener: replies into the assembler, on the transport thread; the answer once the run ends. */
    private static final class Collector extends ClientCall.Listener<GetReply> {
        private final ClientCall<GetRequest, GetReply> call;
        private final Assembler assembler;
        final CompletableFuture<Run> answer = new CompletableFuture<>();

        Collector(ClientCall<GetRequest, GetReply> call, Assembler assembler) {
            this.call = call;
            this.assembler = assembler;
        }

        @Override
        public void onMessage(GetReply reply) {
            if (answer.isDone()) {
                return;
            }
            assembler.accept(reply);
            if (assembler.ended()) {
                complete();
                // the rest of the stream is not needed: the service stops sending (its cancel handler)
                call.cancel("Get run complete", null);
            }
        }

        @Override
        public void onClose(Status status, Metadata trailers) {
            if (answer.isDone()) {
                return;
            }
            if (status.isOk()) {
                complete();
            } else {
                answer.completeExceptionally(status.asRuntimeException(trailers));
            }
        }

        private void complete() {
            answer.complete(assembler.finish());
        }
    }

    /** The contract's state machine over one call's replies, fed one reply at a time. */
    private static final class Assembler {
        private final int requested;
        private final int blockBytes;
        private final List<byte[]> out = new ArrayList<>();
        private byte[] block;
        private int filled;
        private boolean ended;
        private BadReplyException bad;

        Assembler(int requested, int blockBytes) {
            this.requested = requested;
            this.blockBytes = blockBytes;
        }

        /** Whether the run ended (all requested blocks, a miss, or a broken contract): later replies are not read. */
        boolean ended() {
            return ended || out.size() >= requested;
        }

        void accept(GetReply r) {
            if (ended()) {
                return;
            }
            try {
                take(r);
            } catch (BadReplyException e) {
                bad = e;
                ended = true;
            }
        }

        private void take(GetReply r) {
            if (r.index() != out.size()) {
                throw bad("block " + Integer.toUnsignedString(r.index()) + " sent while block " + out.size()
                        + " was expected");
            }
            if (!r.found()) {
                if (block != null) {
                    throw bad("block " + out.size() + " reported missing after " + filled + " of its bytes");
                }
                ended = true;
                return;
            }
            int n = r.length();
            if (r.offset() != filled || filled + (long) n > blockBytes) {
                throw bad("block " + out.size() + ": a chunk at offset " + Long.toUnsignedString(r.offset())
                        + " of " + n + " bytes after " + filled + " of " + blockBytes);
            }
            if (block == null) {
                block = r.blockArray(blockBytes);
                if (block == null) {
                    block = new byte[blockBytes];
                    r.data().get(r.data().position(), block, 0, n);
                }
            } else {
                r.data().get(r.data().position(), block, filled, n);
            }
            filled += n;
            if (r.last()) {
                if (filled != blockBytes) {
                    throw bad("block " + out.size() + " ended after " + filled + " of " + blockBytes + " bytes");
                }
                out.add(block);
                block = null;
                filled = 0;
            }
        }

        /** The run, once the replies ended or the run did: a block still incomplete breaks the contract. */
        Run finish() {
            if (bad == null && block != null) {
                bad = bad("block " + out.size() + ": the stream ended after " + filled + " of " + blockBytes
                        + " bytes");
            }
            ended = true;
            return new Run(out, bad);
        }
    }

    private static BadReplyException bad(String message) {
        return new BadReplyException(message);
    }
}
