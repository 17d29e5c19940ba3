// External memory model: tilelab_nodemem without its word-addressed rc / wd ports (see there for
// the timing, the +<NAME>_init / +<NAME>_dump plusargs and the load port).
// This module is the Verilog twin of tilelab.hdl.memories.ExtMemory's Amaranth model.
module tilelab_extmem #(
    parameter integer W = 16,          // bytes per word (power of two)
    parameter integer LOGW = 4,        // log2(W)
    parameter integer DEPTH = 1024,    // words
    parameter NAME = "extmem"
) (
    input  wire             clk,
    input  wire             ra_en,
    input  wire [31:0]      ra_addr,
    output wire [8*W-1:0]   ra_data,
    input  wire             rb_en,
    input  wire [31:0]      rb_addr,
    output wire [8*W-1:0]   rb_data,
    input  wire             wr_en,
    input  wire [31:0]      wr_addr,
    input  wire [8*W-1:0]   wr_data,
    input  wire [W-1:0]     wr_mask,
    input  wire             dump,
    input  wire             load
);
    /* verilator lint_off PINCONNECTEMPTY */
    tilelab_nodemem #(.W(W), .LOGW(LOGW), .DEPTH(DEPTH), .NAME(NAME)) mem (
        .clk(clk), .ra_en(ra_en), .ra_addr(ra_addr), .ra_data(ra_data),
        .rb_en(rb_en), .rb_addr(rb_addr), .rb_data(rb_data),
        .wr_en(wr_en), .wr_addr(wr_addr), .wr_data(wr_data), .wr_mask(wr_mask),
        .rc_en(1'b0), .rc_addr(32'd0), .rc_data(), .wd_en(1'b0), .wd_addr(32'd0), .wd_data({(8*W){1'b0}}),
        .dump(dump), .load(load));
    /* verilator lint_on PINCONNECTEMPTY */
endmodule
