"""The data mover of a tile node: the node's NoC reader and writer, run by a descriptor program.

A :class:`DataMover` fetches :class:`~tilelab.hdl.formats.mesh.MoveDesc` descriptors from node memory
and runs them: GET (a read request answered into node memory, by unicast or multicast), PUT to a
node or a rectangle (its :class:`Streamer` cuts the words into packets), semaphore WAIT / SIGNAL,
RUN the tile, ELT the element-wise unit, REDUCE on the collective plane, END. See
:mod:`tilelab.pe_models.mesh` for the node around it.
"""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from tilelab.hdl.formats.mesh import (
    MOVE_DESC_BYTES,
    SEMAPHORES,
    MoveDesc,
    MoveOp,
    MoverState,
    ReadRequest,
)
from tilelab.hdl.formats.noc import Coord, Header, Opcode, ReduceOp, collective_flit_layout, flit_layout

from .config import MeshConfig

__all__ = ["DataMover", "MoverState", "Streamer"]




class Streamer(wiring.Component):
    """Reads words from a memory and sends each as a NoC flit addressed to its own destination word.

    A command moves ``rows`` rows of ``words`` words from word ``src + r·src_stride + i`` to word
    ``dst + r·dst_stride + i``. Flits carry the header template ``hdr`` with ``addr`` set per flit
    and ``op`` replaced by ``final_op`` on the very last flit; packets are cut every
    ``max_packet`` flits.

    Members
    -------
    cmd_valid, cmd_ready, src, dst, words, rows, src_stride, dst_stride, hdr, final_op : command
    rd_en, rd_addr, rd_data : word read port (one cycle latency)
    out : Out(stream.Signature(flit))
    busy : Out(1)
        A command is being issued or flits are still queued.
    """

    def __init__(self, data_width, max_packet, depth=4):
        self.layout = flit_layout(data_width)
        self.max_packet, self.depth = max_packet, depth
        super().__init__({
            "cmd_valid": In(1), "cmd_ready": Out(1),
            "src": In(32), "dst": In(32), "words": In(16), "rows": In(16),
            "src_stride": In(32), "dst_stride": In(32), "hdr": In(Header), "final_op": In(Opcode),
            "rd_en": Out(1), "rd_addr": Out(32), "rd_data": In(data_width),
            "out": Out(stream.Signature(self.layout)),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.q = q = fifo.SyncFIFO(width=self.layout.size, depth=self.depth)
        active = Signal()
        src_row, dst_row = Signal(32), Signal(32)
        i, r = Signal(16), Signal(16)
        words, rows = Signal(16), Signal(16)
        src_stride, dst_stride = Signal(32), Signal(32)
        hdr = Signal(Header)
        final_op = Signal(Opcode)
        pk = Signal(range(self.max_packet + 1))

        # one issued read in flight: its header and last bit wait beside it
        inflight = Signal()
        pend_hdr = Signal(Header)
        pend_last = Signal()
        m.d.comb += self.cmd_ready.eq(~active)
        with m.If(self.cmd_valid & ~active):
            m.d.sync += [
                active.eq((self.words != 0) & (self.rows != 0)), src_row.eq(self.src), dst_row.eq(self.dst),
                i.eq(0), r.eq(0), words.eq(self.words), rows.eq(self.rows), src_stride.eq(self.src_stride),
                dst_stride.eq(self.dst_stride), hdr.eq(self.hdr), final_op.eq(self.final_op),
            ]

        room = (q.level + inflight) < self.depth
        issue = active & room
        final = (i == words - 1) & (r == rows - 1)
        m.d.sync += inflight.eq(issue)
        with m.If(issue):
            m.d.comb += [self.rd_en.eq(1), self.rd_addr.eq(src_row + i)]
            m.d.sync += [
                pend_hdr.eq(hdr), pend_hdr.addr.eq(dst_row + i), pend_hdr.op.eq(Mux(final, final_op, hdr.op)),
                pend_last.eq(final | (pk == self.max_packet - 1)),
                pk.eq(Mux(final | (pk == self.max_packet - 1), 0, pk + 1)),
            ]
            with m.If(i == words - 1):
                m.d.sync += [i.eq(0), r.eq(r + 1), src_row.eq(src_row + src_stride),
                             dst_row.eq(dst_row + dst_stride)]
                with m.If(final):
                    m.d.sync += active.eq(0)
            with m.Else():
                m.d.sync += i.eq(i + 1)

        flit = Signal(self.layout)
        m.d.comb += [flit.hdr.eq(pend_hdr), flit.last.eq(pend_last), flit.data.eq(self.rd_data),
                     q.w_en.eq(inflight), q.w_data.eq(flit)]
        m.d.comb += [self.out.valid.eq(q.r_rdy), self.out.payload.eq(q.r_data), q.r_en.eq(self.out.ready)]
        m.d.comb += self.busy.eq(active | inflight | (q.level != 0))
        return m


class DataMover(wiring.Component):
    """A tile node's data-movement engine: runs :class:`~tilelab.hdl.formats.mesh.MoveDesc` slots.

    Parameters
    ----------
    config : MeshConfig

    Members
    -------
    at : In(Coord)
        This node's NoC coordinates.
    start : In(1)
        Begin at descriptor 0.
    done : Out(1)
        ``END`` reached (sticky).
    rd_en, rd_addr, rd_data : node-memory word read port
    req, mcast : Out(stream.Signature(flit))
        Flits into the request and multicast planes.
    sem_inc, sem_idx : In
        The network interface counts an arrival on semaphore ``sem_idx``.
    tile_rst, tile_start, tile_base, tile_done : control of the unit a RUN / ELT starts
    run_elt : Out(1)
        The current descriptor is ``ELT`` (the element-wise unit, not the tile).
    run_done : Out(1)
        Pulses when a RUN finishes (the node sums the tile's counters then).
    state, pc, wait_sem, wait_count, sem_value : Out
        For the diagnosis.
    wait_cycles, flits_sent, words_get, words_put : Out(48)
        Counters.
    reduces, reduce_cycles, reduce_sent, reduce_received : Out(48)
        REDUCE counters: descriptors, cycles, words contributed, total words written.
    reduce_words, reduce_sent_now, reduce_got_now : Out(16)
        The REDUCE being run: its words, words contributed and totals written so far.
    coll_out : Out(stream.Signature(cflit))
        Contributions into the collective plane (``config.eltwise`` only, as the next three).
    coll_in : In(stream.Signature(cflit))
        Totals out of the collective plane.
    tot_en, tot_addr, tot_data : Out
        Write one total word into node memory (word address).
    tot_ok : In(1)
        The node-memory write port is free this cycle.
    """

    def __init__(self, config: MeshConfig):
        self.config = config
        W = config.word_bytes
        layout = flit_layout(8 * W)
        extra = {}
        if config.eltwise:
            clayout = collective_flit_layout(config.collective_lanes)
            extra = {"coll_out": Out(stream.Signature(clayout)), "coll_in": In(stream.Signature(clayout)),
                     "tot_en": Out(1), "tot_addr": Out(32), "tot_data": Out(8 * W), "tot_ok": In(1)}
        super().__init__({
            "at": In(Coord), "start": In(1), "done": Out(1),
            "rd_en": Out(1), "rd_addr": Out(32), "rd_data": In(8 * W),
            "req": Out(stream.Signature(layout)), "mcast": Out(stream.Signature(layout)),
            "sem_inc": In(1), "sem_idx": In(4),
            "tile_rst": Out(1), "tile_start": Out(1), "tile_base": Out(32), "tile_done": In(1),
            "run_elt": Out(1), "run_done": Out(1),
            "state": Out(MoverState), "pc": Out(32), "wait_sem": Out(4), "wait_count": Out(16),
            "sem_value": Out(16),
            "wait_cycles": Out(48), "flits_sent": Out(48), "words_get": Out(48), "words_put": Out(48),
            "reduces": Out(48), "reduce_cycles": Out(48), "reduce_sent": Out(48), "reduce_received": Out(48),
            "reduce_words": Out(16), "reduce_sent_now": Out(16), "reduce_got_now": Out(16),
            **extra,
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        W = cfg.word_bytes
        layout = flit_layout(8 * W)
        desc_bits = MoveDesc.as_shape().size
        nwords = max(1, MOVE_DESC_BYTES // W)

        m.submodules.streamer = st = Streamer(8 * W, cfg.max_packet)
        # The template's address is the first destination word (the streamer sets it per flit); driven
        # here so that no bit of the template is a constant.
        m.d.comb += st.hdr.addr.eq(st.dst)

        # --- semaphores ----------------------------------------------------------------------
        sems = [Signal(16, name=f"sem{k}") for k in range(SEMAPHORES)]
        dec_en = Signal()
        dec_idx = Signal(4)
        dec_n = Signal(16)
        for k, s in enumerate(sems):
            inc = self.sem_inc & (self.sem_idx == k)
            dec = dec_en & (dec_idx == k)
            m.d.sync += s.eq(s + inc - Mux(dec, dec_n, 0))

        # --- descriptor fetch --------------------------------------------------------------------
        pc = Signal(32)
        asm = Signal(8 * W * nwords)
        k_issue = Signal(range(nwords + 1))
        k_recv = Signal(range(nwords + 1))
        got = Signal()
        desc = Signal(MoveDesc)
        byte_addr = pc * MOVE_DESC_BYTES
        m.d.comb += [self.pc.eq(pc), self.tile_base.eq(desc.tile_base), self.run_elt.eq(desc.op == MoveOp.ELT)]

        # own single-flit sender (GET requests, SIGNAL)
        own_valid = Signal()
        own = Signal(layout)
        row = Signal(16)

        state = Signal(MoverState)
        m.d.comb += self.state.eq(state)
        mcast_put = Signal()
        reducing = Signal()     # the streamer feeds the collective plane
        red_sent = Signal(16)
        red_got = Signal(16)
        m.d.comb += [self.reduce_words.eq(desc.words), self.reduce_sent_now.eq(red_sent),
                     self.reduce_got_now.eq(red_got)]
        if cfg.eltwise:
            # contributions: the streamer's words, the last one ends the collective packet
            co, ci = self.coll_out, self.coll_in
            m.d.comb += [
                co.payload.hdr.op.eq(ReduceOp.SUM), co.payload.hdr.root.x.eq(desc.node.x - 1),
                co.payload.hdr.root.y.eq(desc.node.y), co.payload.hdr.rect0.x.eq(desc.rect0.x - 1),
                co.payload.hdr.rect0.y.eq(desc.rect0.y), co.payload.hdr.rect1.x.eq(desc.rect1.x - 1),
                co.payload.hdr.rect1.y.eq(desc.rect1.y),
                co.payload.last.eq(st.out.payload.hdr.op == Opcode.WRITE_SEM),
                co.payload.data.as_value().eq(st.out.payload.data),
            ]
            with m.If(co.valid & co.ready):
                m.d.sync += [red_sent.eq(red_sent + 1), self.reduce_sent.eq(self.reduce_sent + 1)]
            # totals: written at remote + k while the REDUCE runs
            m.d.comb += [ci.ready.eq(reducing & self.tot_ok), self.tot_en.eq(ci.valid & ci.ready),
                         self.tot_addr.eq(desc.remote + red_got), self.tot_data.eq(ci.payload.data.as_value())]
            with m.If(self.tot_en):
                m.d.sync += [red_got.eq(red_got + 1), self.reduce_received.eq(self.reduce_received + 1)]

        # plane outputs: the streamer feeds the collective, the request or the multicast plane
        with m.If(reducing):
            if cfg.eltwise:
                m.d.comb += [self.coll_out.valid.eq(st.out.valid), st.out.ready.eq(self.coll_out.ready)]
        with m.Elif(mcast_put):
            m.d.comb += [self.mcast.valid.eq(st.out.valid), self.mcast.payload.eq(st.out.payload),
                         st.out.ready.eq(self.mcast.ready)]
        with m.Elif(own_valid):
            m.d.comb += [self.req.valid.eq(1), self.req.payload.eq(own)]
        with m.Else():
            m.d.comb += [self.req.valid.eq(st.out.valid), self.req.payload.eq(st.out.payload),
                         st.out.ready.eq(self.req.ready)]
        with m.If(own_valid & self.req.ready):
            m.d.sync += own_valid.eq(0)
        sent = (self.req.valid & self.req.ready) | (self.mcast.valid & self.mcast.ready)
        with m.If(sent):
            m.d.sync += self.flits_sent.eq(self.flits_sent + 1)

        # memory read port: the fetcher, else the streamer
        with m.If(state == MoverState.FETCH):
            m.d.comb += [self.rd_en.eq(k_issue < nwords), self.rd_addr.eq((byte_addr >> (W.bit_length() - 1))
                                                                             + k_issue)]
        with m.Else():
            m.d.comb += [self.rd_en.eq(st.rd_en), self.rd_addr.eq(st.rd_addr)]
        m.d.comb += st.rd_data.eq(self.rd_data)

        me = self.at
        m.d.comb += [self.wait_sem.eq(desc.sem), self.wait_count.eq(desc.count)]
        with m.Switch(desc.sem):
            for k, s in enumerate(sems):
                with m.Case(k):
                    m.d.comb += self.sem_value.eq(s)

        # on to the next descriptor
        nxt = [pc.eq(pc + 1), k_issue.eq(0), k_recv.eq(0), state.eq(MoverState.FETCH)]
        with m.Switch(state):
            with m.Case(MoverState.IDLE):
                with m.If(self.start):
                    m.d.sync += [state.eq(MoverState.FETCH), pc.eq(0), k_issue.eq(0), k_recv.eq(0), got.eq(0)]
            with m.Case(MoverState.FETCH):
                with m.If(k_issue < nwords):
                    m.d.sync += k_issue.eq(k_issue + 1)
                m.d.sync += got.eq(self.rd_en)
                with m.If(got):
                    m.d.sync += [asm.eq(Cat(asm[8 * W:], self.rd_data) if nwords > 1 else self.rd_data),
                                 k_recv.eq(k_recv + 1)]
                with m.If(k_recv == nwords):
                    if W > MOVE_DESC_BYTES:
                        off = byte_addr[:W.bit_length() - 1]
                        m.d.sync += desc.eq((asm >> (off * 8))[:desc_bits])
                    else:
                        m.d.sync += desc.eq(asm[:desc_bits])
                    m.d.sync += [state.eq(MoverState.MOVE), row.eq(0), got.eq(0)]
            with m.Case(MoverState.MOVE):
                view = desc
                with m.Switch(view.op):
                    with m.Case(MoveOp.GET, MoveOp.GET_MCAST):
                        with m.If(~own_valid | self.req.ready):
                            with m.If(row == view.rows):
                                m.d.sync += nxt
                            with m.Else():
                                rq = Signal(ReadRequest)
                                m.d.comb += [
                                    rq.words.eq(view.words), rq.dst.eq(view.local + row * view.local_stride),
                                    rq.sem.eq(view.sem), rq.signal.eq(row == view.rows - 1),
                                    rq.mcast.eq(view.op == MoveOp.GET_MCAST), rq.rect0.eq(view.rect0),
                                    rq.rect1.eq(view.rect1),
                                ]
                                m.d.sync += [
                                    own_valid.eq(1), own.hdr.op.eq(Opcode.READ), own.hdr.src.eq(me),
                                    own.hdr.dst.eq(view.node), own.hdr.dst_end.eq(view.node),
                                    own.hdr.sem.eq(view.sem),
                                    own.hdr.addr.eq(view.remote + row * view.remote_stride), own.last.eq(1),
                                    own.data.eq(rq), row.eq(row + 1),
                                    self.words_get.eq(self.words_get + view.words),
                                ]
                    with m.Case(MoveOp.PUT):
                        with m.If(row == 0):
                            with m.If(st.cmd_ready & ~st.busy & ~own_valid):
                                m.d.comb += [
                                    st.cmd_valid.eq(1), st.src.eq(view.local), st.dst.eq(view.remote),
                                    st.words.eq(view.words), st.rows.eq(view.rows),
                                    st.src_stride.eq(view.local_stride), st.dst_stride.eq(view.remote_stride),
                                    st.hdr.op.eq(Opcode.WRITE), st.hdr.src.eq(me), st.hdr.sem.eq(view.sem),
                                    st.hdr.dst.eq(Mux(view.mcast, view.rect0, view.node)),
                                    st.hdr.dst_end.eq(Mux(view.mcast, view.rect1, view.node)),
                                    st.final_op.eq(Opcode.WRITE_SEM),
                                ]
                                m.d.sync += [row.eq(1), mcast_put.eq(view.mcast),
                                             self.words_put.eq(self.words_put + view.words * view.rows)]
                        with m.Elif(~st.busy):
                            m.d.sync += [mcast_put.eq(0), *nxt]
                    with m.Case(MoveOp.SIGNAL):
                        with m.If(~own_valid):
                            m.d.sync += [
                                own_valid.eq(1), own.hdr.op.eq(Opcode.SEM_INC), own.hdr.src.eq(me),
                                own.hdr.dst.eq(view.node), own.hdr.dst_end.eq(view.node), own.hdr.sem.eq(view.sem),
                                own.hdr.addr.eq(0), own.last.eq(1), own.data.eq(0), *nxt,
                            ]
                    with m.Case(MoveOp.WAIT):
                        m.d.sync += state.eq(MoverState.WAIT)
                    with m.Case(MoveOp.REDUCE):
                        if cfg.eltwise:
                            with m.If(st.cmd_ready & ~st.busy & ~own_valid):
                                m.d.comb += [
                                    st.cmd_valid.eq(1), st.src.eq(view.local), st.dst.eq(0), st.words.eq(view.words),
                                    st.rows.eq(1), st.src_stride.eq(0), st.dst_stride.eq(0),
                                    st.hdr.op.eq(Opcode.WRITE), st.final_op.eq(Opcode.WRITE_SEM),
                                ]
                                m.d.sync += [state.eq(MoverState.REDUCE), reducing.eq(1), red_sent.eq(0),
                                             red_got.eq(0), self.reduces.eq(self.reduces + 1)]
                        else:   # no collective plane: nothing to do
                            m.d.sync += nxt
                    with m.Case(MoveOp.RUN, MoveOp.ELT):
                        with m.If(~own_valid):
                            m.d.comb += self.tile_rst.eq(1)
                            m.d.sync += [state.eq(MoverState.RUN), row.eq(0)]
                    with m.Default():  # END (and anything undefined)
                        with m.If(~own_valid):
                            m.d.sync += [state.eq(MoverState.DONE), self.done.eq(1)]
            with m.Case(MoverState.REDUCE):
                m.d.sync += self.reduce_cycles.eq(self.reduce_cycles + 1)
                with m.If(~st.busy & (red_got == desc.words)):
                    m.d.sync += [reducing.eq(0), *nxt]
            with m.Case(MoverState.WAIT):
                with m.If(self.sem_value >= desc.count):
                    m.d.comb += [dec_en.eq(1), dec_idx.eq(desc.sem), dec_n.eq(desc.count)]
                    m.d.sync += nxt
                with m.Else():
                    m.d.sync += self.wait_cycles.eq(self.wait_cycles + 1)
            with m.Case(MoverState.RUN):
                # row 0: start pulse; row 1: wait for done
                with m.If(row == 0):
                    m.d.comb += self.tile_start.eq(1)
                    m.d.sync += row.eq(1)
                with m.Elif(self.tile_done):
                    m.d.comb += self.run_done.eq(1)
                    m.d.sync += nxt
        return m
