// Memory model (external memory and node memories): byte-addressed, unaligned W-byte accesses, bulk load and dump by file.
//
// Words are W bytes (byte 0 in bits 7:0). A read returns the W bytes starting at any byte
// address one cycle later; a write stores the bytes selected by wr_mask at any byte address.
// Accesses may straddle two words (a real controller would split them; the model does it in one
// cycle). Reads see the memory as it was before a write in the same cycle.
//
// +<NAME>_init=FILE loads the memory with $readmemh at time 0 (one word per line, hex); a cycle
// with load high clears the memory and loads that file again (one simulation, several programs).
// A cycle with dump high writes words +<NAME>_dump_lo=N .. +<NAME>_dump_hi=M (default: all) to
// +<NAME>_dump=FILE with $writememh; with +<NAME>_dump_range=FILE the range is read from that
// file ("N M") at each dump instead.
// Node-memory variant: two more word-addressed ports, rc (read, one cycle latency) and wd
// (whole-word write), for a node's data mover and network interface. Model of
// tilelab.hdl.memories.NodeMemory.
/* verilator lint_off WIDTHEXPAND */
/* verilator lint_off WIDTHTRUNC */
module tilelab_nodemem #(
    parameter integer W = 16,          // bytes per word (power of two)
    parameter integer LOGW = 4,        // log2(W)
    parameter integer DEPTH = 1024,    // words
    parameter NAME = "extmem"
) (
    input  wire             clk,
    input  wire             ra_en,
    input  wire [31:0]      ra_addr,
    output reg  [8*W-1:0]   ra_data,
    input  wire             rb_en,
    input  wire [31:0]      rb_addr,
    output reg  [8*W-1:0]   rb_data,
    input  wire             wr_en,
    input  wire [31:0]      wr_addr,
    input  wire [8*W-1:0]   wr_data,
    input  wire [W-1:0]     wr_mask,
    input  wire             rc_en,
    input  wire [31:0]      rc_addr,
    output reg  [8*W-1:0]   rc_data,
    input  wire             wd_en,
    input  wire [31:0]      wd_addr,
    input  wire [8*W-1:0]   wd_data,
    input  wire             dump,
    input  wire             load
);
    reg [8*W-1:0] mem [0:DEPTH-1];
    reg [8*1024-1:0] fname, rname;
    integer i, dlo, dhi, fd, nread;

    initial begin
        for (i = 0; i < DEPTH; i = i + 1) mem[i] = 0;
        if ($value$plusargs({NAME, "_init=%s"}, fname)) $readmemh(fname, mem);
    end

    function [8*W-1:0] rd(input [31:0] addr);
        reg [31:0] wi;
        reg [16*W-1:0] two;
        begin
            wi = addr >> LOGW;
            two = {mem[(wi + 1) % DEPTH], mem[wi % DEPTH]};
            rd = two >> (8 * addr[LOGW-1:0]);
        end
    endfunction

    reg [31:0] wwi;
    reg [16*W-1:0] wtwo, wbits, wmask2;
    integer b;
    always @(posedge clk) begin
        if (ra_en) ra_data <= rd(ra_addr);
        if (rb_en) rb_data <= rd(rb_addr);
        if (rc_en) rc_data <= mem[rc_addr % DEPTH];
        if (wr_en) begin
            wwi = wr_addr >> LOGW;
            wtwo = {mem[(wwi + 1) % DEPTH], mem[wwi % DEPTH]};
            wmask2 = 0;
            for (b = 0; b < W; b = b + 1)
                if (wr_mask[b]) wmask2[8*b +: 8] = 8'hff;
            wmask2 = wmask2 << (8 * wr_addr[LOGW-1:0]);
            wbits = {{(8*W){1'b0}}, wr_data} << (8 * wr_addr[LOGW-1:0]);
            wtwo = (wtwo & ~wmask2) | (wbits & wmask2);
            // Blocking writes after this block's reads (reads see the old contents); only this
            // block touches mem, and Icarus mis-orders non-blocking writes to memory words.
            mem[wwi % DEPTH] = wtwo[8*W-1:0];
            mem[(wwi + 1) % DEPTH] = wtwo[16*W-1:8*W];
        end
        if (wd_en) mem[wd_addr % DEPTH] = wd_data;
        if (load) begin
            for (i = 0; i < DEPTH; i = i + 1) mem[i] = 0;
            if ($value$plusargs({NAME, "_init=%s"}, fname)) $readmemh(fname, mem);
        end
        if (dump) begin
            if ($value$plusargs({NAME, "_dump=%s"}, fname)) begin
                if (!$value$plusargs({NAME, "_dump_lo=%d"}, dlo)) dlo = 0;
                if (!$value$plusargs({NAME, "_dump_hi=%d"}, dhi)) dhi = DEPTH - 1;
                if ($value$plusargs({NAME, "_dump_range=%s"}, rname)) begin
                    fd = $fopen(rname, "r");
                    if (fd != 0) begin
                        nread = $fscanf(fd, "%d %d", dlo, dhi);
                        $fclose(fd);
                    end
                end
                $writememh(fname, mem, dlo, dhi);
            end
        end
    end
endmodule
